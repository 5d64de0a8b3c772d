#!/usr/bin/env bash
# Trains the same short run with the eidetic of an older revision and with this working
# tree's, on this machine, and checks that the two checkpoints hold bit-identical tensors
# (weights, EMA, optimizer state), then that this tree resumes the older revision's run
# directory (checkpointed halfway) to the same bits. Issue 11's check that the training
# engine left the DDPM's results unchanged; the default is cifar64-memorize for 240 steps
# (warmup, clipping, two checkpoints). Needs datasets/cifar10.h5 for the default config.
#
#   scripts/check-bit-identity.sh REV [CONFIG] [--set key=value …]
set -euo pipefail
REV=${1:?usage: scripts/check-bit-identity.sh REV [CONFIG] [--set key=value …]}
CONFIG=${2:-experiments/cifar64-memorize.toml}
shift $(( $# >= 2 ? 2 : 1 ))
SETS=(--set train.images=3840 --set train.checkpoint_every=100 "$@")
ROOT=$(git rev-parse --show-toplevel)
WORK=$(mktemp -d /tmp/eidetic-bits-XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true' EXIT

git -C "$ROOT" worktree add --detach "$WORK/old" "$REV" >/dev/null
echo "building $REV …"
(cd "$WORK/old" && swift build -c release --product eidetic --scratch-path "$WORK/build-old" 2>&1 | tail -1)
echo "building the working tree …"
(cd "$ROOT" && swift build -c release --product eidetic 2>&1 | tail -1)
OLD="$WORK/build-old/release/eidetic"; NEW="$ROOT/.build/release/eidetic"

cd "$ROOT"
"$OLD" train "$CONFIG" "${SETS[@]}" --run-dir "$WORK/old-run" >/dev/null
"$NEW" train "$CONFIG" "${SETS[@]}" --run-dir "$WORK/new-run" >/dev/null
"$OLD" train "$CONFIG" "${SETS[@]}" --run-dir "$WORK/mixed-run" --stop-at 100 >/dev/null
"$NEW" train "$CONFIG" "${SETS[@]}" --run-dir "$WORK/mixed-run" >/dev/null

# every dataset must be present in both and report "0 differences found"
compare() {
  # h5diff exits 1 on any difference, attributes included (newer checkpoints carry more)
  { h5diff -r "$1" "$2" || true; } | awk -v what="$3" '
    /^dataset: / { n++; expect = 1; next }
    expect && /differences? found/ { if ($1 != "0") bad++; expect = 0; next }
    /not comparable|Not comparable|not found|Objects in/ && !/attribute/ { missing++ }
    END { if (bad || missing || n == 0) { printf "%s: %d tensors, %d differ, %d unmatched\n", what, n, bad, missing; exit 1 }
          printf "%s: %d tensors, bit-identical\n", what, n }'
}
compare "$WORK/old-run/checkpoints/latest.h5" "$WORK/new-run/checkpoints/latest.h5" "$REV vs working tree"
compare "$WORK/old-run/checkpoints/latest.h5" "$WORK/mixed-run/checkpoints/latest.h5" "$REV run resumed by the working tree"
