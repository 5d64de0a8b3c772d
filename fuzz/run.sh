#!/usr/bin/env bash
# Builds and runs Eidetic's libFuzzer targets, one after another (see docs/FUZZING.md).
#
#   fuzz/run.sh [TARGET ...]        default: all seven
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 600)
#   FUZZ_SCRATCH   SwiftPM scratch folder (default .build-fuzz); the growing corpora and logs
#                  live there too (corpus/<target>, logs/<target>.log)
#   FUZZ_SANITIZE  swiftc -sanitize= list (default fuzzer,address)
#   FUZZ_FLAGS     extra libFuzzer flags
#
# Seeds are read from fuzz/corpus/<target> and fuzz/regressions/<target> (committed, never
# written); new inputs go to the scratch corpus; crashing inputs go to
# fuzz/crashes/<target>/ and make this script exit 1 after every target has run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ALL=(FuzzCIFAR FuzzIDX FuzzPNG FuzzDataset FuzzTensorFile FuzzTOML FuzzPlan)
TARGETS=("$@"); [ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
SECONDS_PER=${FUZZ_SECONDS:-600}
SCRATCH=${FUZZ_SCRATCH:-$ROOT/.build-fuzz}
SANITIZE=${FUZZ_SANITIZE:-fuzzer,address}
SWIFT=${SWIFT:-swift}
# Swift's own crash backtracer would race libFuzzer's handler (and takes seconds); HDF5's
# free lists look like leaks to LeakSanitizer at exit.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0:max_allocation_size_mb=512:quarantine_size_mb=16}

build() {
  "$SWIFT" build -c release --package-path fuzz --scratch-path "$SCRATCH" --product "$1" \
    -Xswiftc -sanitize="$SANITIZE" -Xswiftc -parse-as-library
}

failed=()
for t in "${TARGETS[@]}"; do
  echo "== $t: building"
  build "$t" || { echo "error: building $t failed" >&2; exit 1; }
  bin=$("$SWIFT" build -c release --package-path fuzz --scratch-path "$SCRATCH" --show-bin-path)/$t
  work="$SCRATCH/corpus/$t"; crashes="fuzz/crashes/$t"; log="$SCRATCH/logs/$t.log"
  mkdir -p "$work" "$crashes" "$(dirname "$log")" "fuzz/corpus/$t"
  # one fuzzing process (what -jobs=1 -workers=1 would spawn, without the wrapper process)
  opts=(-max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=25 -detect_leaks=0
        -print_final_stats=1 -artifact_prefix="$ROOT/$crashes/")
  [ -f "fuzz/dicts/$t.dict" ] && opts+=(-dict="fuzz/dicts/$t.dict")
  # The HDF5 readers fork a preflight child (Sources/CHDF5/preflight.h) that inherits
  # libFuzzer's malloc hook; the 512 MiB single-allocation limit is ASan's there instead
  # (max_allocation_size_mb below), which the child can switch off for its own reports.
  case $t in FuzzDataset|FuzzTensorFile) opts+=(-malloc_limit_mb=1000000) ;; esac
  case $t in FuzzCIFAR|FuzzDataset|FuzzTensorFile) opts+=(-max_len=65536) ;; esac
  echo "== $t: fuzzing for ${SECONDS_PER}s (log: $log)"
  start=$(date +%s)
  seeds=("fuzz/corpus/$t"); [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  "$bin" "${opts[@]}" ${FUZZ_FLAGS:-} "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  end=$(date +%s)
  stats=$(grep -E "^#[0-9]+" "$log" | tail -1)
  runs=$(grep -E "stat::number_of_executed_units" "$log" | tail -1 | awk '{print $2}')
  echo "== $t: exit $rc after $((end - start))s; runs ${runs:-?}; last: ${stats:-?}"
  if [ $rc -ne 0 ] || ls "$crashes" | grep -q .; then
    failed+=("$t"); echo "== $t: FAILED — see $log and $crashes/" >&2
    grep -E "ERROR|Fatal error|SUMMARY|deadly signal|Test unit written" "$log" | head -5 >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "fuzz: failures in ${failed[*]}" >&2; exit 1; fi
echo "fuzz: no crashes in ${TARGETS[*]}"
