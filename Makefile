# Eidetic. `make quickstart` and `make test` install missing system packages first
# (scripts/install-deps.sh: apt-get, via sudo when not root), then build with optimization.
SWIFT ?= swift
BUILD_FLAGS ?= -c release
THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: deps test-deps build quickstart test bench bench-setup clean fuzz

deps:
	@bash scripts/install-deps.sh

## What the test suite also uses: headless Chromium (the report's browser test), a
## single-node Slurm (slurm-wlm + munge) and rsvg-convert (PNG figures).
TEST_PACKAGES = chromium slurm-wlm munge librsvg2-bin
test-deps:
	@bash scripts/install-deps.sh $(TEST_PACKAGES)

build: deps
	$(SWIFT) build $(BUILD_FLAGS) --product eidetic
	@bash scripts/stamp-version.sh "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)"

## Runs the main job on an embedded default (for now: the tiny CNN example).
quickstart: build
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic quickstart

## The test suite, built with optimization (debug Swift numerics are 10–100× slower).
test: test-deps
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	@bash scripts/stamp-version.sh "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)"
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --disable-swift-testing

## CIFAR-10 archive for data benchmarks (the official file, or the project's shared copy).
CIFAR10 ?= ../shared/datasets/cifar-10-binary.tar.gz

## The PyTorch CPU reference (bench/.venv, git-ignored; torch from PyPI, ~5 GB).
## (Best effort: without PyTorch the benchmarks still run and print no ratios.)
bench-setup:
	@[ -x bench/.venv/bin/python ] && bench/.venv/bin/python -c "import torch, faiss, h5py, opacus" 2>/dev/null || \
	  { python3 -m venv bench/.venv && bench/.venv/bin/pip install -q -r bench/requirements.txt; } || \
	  echo "warning: could not install PyTorch/faiss into bench/.venv; benchmarks run without reference ratios"

## Benchmarks: sgemm and conv2d GFLOP/s at the reference U-Net's shapes; the U-Net training
## step and sampling pass against PyTorch (same models, threads, machine, run); the DCGAN training
## step (D + G, batch 64, all threads and 1) and a generator sampling pass, likewise; the DP-SGD
## step against the ordinary one on unet-s at batch 32 (same run, interleaved); dataset reads
## (CIFAR-10 import time and random batches when the archive is there, else the embedded set);
## exact kNN against faiss IndexFlatL2 and PyTorch on CIFAR-10.
bench: build bench-setup
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench ops --threads $(THREADS)
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench unet --threads $(THREADS)
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench unet --threads 1
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench unet --threads $(THREADS) --precision bf16
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench dcgan --threads $(THREADS)
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench dcgan --threads 1 --only dcgan-train-b64
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench dp --threads $(THREADS)
	@if [ -f "$(CIFAR10)" ]; then \
	  echo; echo "CIFAR-10 import:"; \
	  /usr/bin/time -f "  import wall %e s, max RSS %M KB" .build/release/eidetic data import cifar10 --from "$(CIFAR10)" --out datasets/cifar10.h5 && \
	  .build/release/eidetic bench data datasets/cifar10.h5 && \
	  echo && echo "exact kNN, 10,000 CIFAR-10 test images against the 50,000 training images (k = 50):" && \
	  .build/release/eidetic bench knn datasets/cifar10.h5 --threads $(THREADS); \
	else .build/release/eidetic bench data datasets/fashion-mnist-2k.h5; fi

## Fuzzes the file loaders with libFuzzer (CIFAR-10 archive, IDX, PNG, dataset HDF5, tensor
## files, TOML configs, plan JSON): FUZZ_SECONDS per target, one target at a time, from the
## seeds in fuzz/corpus/; crashing inputs go to fuzz/crashes/<target>/ and fail the run. A
## separate package (fuzz/Package.swift), never built by `make test`. See docs/FUZZING.md.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) SWIFT=$(SWIFT) bash fuzz/run.sh $(FUZZ_TARGETS)

clean:
	rm -rf .build
