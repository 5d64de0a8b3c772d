#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Eidetic builds against, only when missing.
# Uses sudo when not root. Safe to run repeatedly (a no-op when all are present).
#   scripts/install-deps.sh [extra-package ...]
set -euo pipefail
pkgs=(libopenblas-dev libhdf5-dev pkg-config zlib1g-dev libpng-dev hdf5-tools libsqlite3-dev librsvg2-bin "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
