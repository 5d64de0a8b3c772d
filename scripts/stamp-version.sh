#!/usr/bin/env bash
# Writes <bin>/eidetic.version: the commit the binary was just built from (`git describe
# --always --dirty`), which CodeVersion records in every result. Called by `make` after each
# build; a binary copied elsewhere keeps its commit if the stamp is copied beside it.
set -euo pipefail
bin="$1/eidetic"
[ -f "$bin" ] || exit 0
if v=$(git describe --always --dirty --abbrev=12 2>/dev/null); then
  printf '%s\n' "$v" > "$bin.version.tmp" && mv "$bin.version.tmp" "$bin.version"
fi
