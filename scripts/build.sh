#!/usr/bin/env bash
# Configures and builds one flavour: scripts/build.sh [release|asan] (default release).
# release: what users run. asan: the same optimisation with AddressSanitizer and
# UndefinedBehaviorSanitizer and line tables (-g1) for their stack traces; the tests run on it.
# The sanitizers slow optimised code about twofold, against about tenfold at -O0, where the
# Highway kernels and the benchmark probes the tests call become function calls per instruction.
# Both are unity builds (16 source files per translation unit): the shared headers are parsed
# once per group instead of once per file, about half the build time on a 2-core machine. The
# sanitizer flavour leaves out the benchmark programs, which the tests do not run.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -g1" -DRWKV_SANITIZE=ON
                                -DRWKV_BUILD_BENCH=OFF) ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja -DRWKV_WERROR=ON -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 \
  "${flags[@]}" > /dev/null
cmake --build "$dir" -j "$(nproc)"
