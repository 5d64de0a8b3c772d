# Eidetic. `make quickstart` and `make test` install missing system packages first
# (scripts/install-deps.sh: apt-get, via sudo when not root), then build with optimization.
SWIFT ?= swift
BUILD_FLAGS ?= -c release
THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: deps build quickstart test bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build $(BUILD_FLAGS) --product eidetic

## Runs the main job on an embedded default (for now: the tiny CNN example).
quickstart: build
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic quickstart

## The test suite, built with optimization (debug Swift numerics are 10–100× slower).
test: deps
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --disable-swift-testing

## Kernel benchmarks: sgemm and conv2d GFLOP/s at the reference U-Net's shapes.
bench: build
	$(SWIFT) run $(BUILD_FLAGS) --skip-build eidetic bench ops --threads $(THREADS)

clean:
	rm -rf .build
