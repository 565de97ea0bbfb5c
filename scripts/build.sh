#!/usr/bin/env bash
# Configures and builds one flavour: scripts/build.sh [release|asan] (default release).
# A unity build (16 source files per translation unit) parses the shared headers once per group
# instead of once per file: about half the build time on a 2-core machine. The sanitizer
# flavour leaves out the benchmark programs, which the tests do not run, and keeps line tables
# only (-g1): enough for the sanitizers' stack traces. It stays at -O0: at -O1, GCC 12 with the
# sanitizers warns falsely (maybe-uninitialized) inside libstdc++'s <regex>, an error under -Werror;
# at -O2 one Highway file (simd.cpp) was still compiling after 98 minutes on a slow 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DRWKV_SANITIZE=ON
                                -DRWKV_BUILD_BENCH=OFF) ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja -DRWKV_WERROR=ON -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 \
  "${flags[@]}" > /dev/null
cmake --build "$dir" -j "$(nproc)"
