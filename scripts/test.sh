#!/usr/bin/env bash
# Builds one flavour (scripts/build.sh: release by default, or asan) and runs the whole GoogleTest
# suite on it through CTest: scripts/test.sh [release|asan]. CI runs the release flavour: on the
# slowest 2-core machines CI is given, one optimised build takes 20-40 minutes and the sanitizer
# build (-O0) about as long again, and its tests ten times longer, so both do not fit in its 90
# minutes. Run the asan flavour (AddressSanitizer + UBSan) before landing changes to parsers or
# memory handling.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
dir=build; [ "$flavour" = asan ] && dir=build-asan
echo "== $flavour: build"
scripts/build.sh "$flavour"
echo "== $flavour: test"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
