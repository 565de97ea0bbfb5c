#!/usr/bin/env bash
# Configures and builds one flavour: scripts/build.sh [release|asan] (default release).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DRWKV_SANITIZE=ON) ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja -DRWKV_WERROR=ON "${flags[@]}" > /dev/null
cmake --build "$dir" -j "$(nproc)"
