#!/usr/bin/env bash
# Checks our block types against ggml's own code, bit for bit, on a random RWKV-7 (rwkv init: 2
# layers, width 256, so every large matrix is whole K-quant super-blocks). For each type:
#   1. `rwkv quantize` writes the type (ours), and ggml_quantize_chunk (the function
#      llama-quantize runs, without an importance matrix) quantizes the same tensors into a file
#      written by ggml's GGUF writer (ggml's);
#   2. ggml's file loads in rwkv and generates;
#   3. our dequantization equals ggml's (to_float, what `llama-quantize --allow-requantize
#      F32` runs) on both files: each is dequantized both ways, both results are written out by
#      `rwkv convert --dtype f32` (one writer, the same metadata), and the files must be equal;
#   4. whether the two quantizers wrote the same blocks, and each one's relative RMS error.
# scripts/ggml_quants.cpp, built here against the ggml of a llama.cpp build, does ggml's part.
#
#   LLAMA_CPP_DIR=~/llama.cpp/build scripts/check-ggml-quants.sh [TYPE...]
#     LLAMA_CPP_DIR: a llama.cpp build folder (bin/libggml-base.so, and ../ggml/include)
#     TYPE: rwkv quantize's names (default: q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0)
#     RWKV: the rwkv binary (default build/rwkv)
# Prints a markdown table; exits non-zero when a file does not load or a dequantization differs.
set -euo pipefail

rwkv=${RWKV:-build/rwkv}
build=${LLAMA_CPP_DIR:?set LLAMA_CPP_DIR to a llama.cpp build folder}
include=${GGML_INCLUDE:-$build/../ggml/include}
[ -f "$build/bin/libggml-base.so" ] || { echo "check-ggml-quants: no $build/bin/libggml-base.so" >&2; exit 2; }
[ -f "$include/gguf.h" ] || { echo "check-ggml-quants: no $include/gguf.h (set GGML_INCLUDE)" >&2; exit 2; }
[ -x "$rwkv" ] || { echo "check-ggml-quants: no $rwkv (build first, or set RWKV)" >&2; exit 2; }
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tool=$work/ggml_quants
${CXX:-g++} -std=c++17 -O2 -I"$include" "$(dirname "$0")/ggml_quants.cpp" -o "$tool" \
  -L"$build/bin" -lggml-base -Wl,-rpath,"$build/bin"
# Every file is named m.gguf in its own folder: rwkv convert names the model after the input.
mkdir -p "$work"/{ours,ggml,deq-ours,deq-ggml,out-a,out-b}
"$rwkv" init --arch rwkv7 --layers 2 --embd 256 --vocab 256 --tokenizer bytes --seed 7 -o "$work/m.gguf" 2>/dev/null

# Writes FILE dequantized by us to $work/out-a/m.gguf and by ggml (then rewritten by us) to out-b.
dequantize_both() {
  "$rwkv" convert "$1" "$work/out-a/m.gguf" --dtype f32 >/dev/null 2>&1
  "$tool" dequantize "$1" "$work/deq-ggml/m.gguf"
  "$rwkv" convert "$work/deq-ggml/m.gguf" "$work/out-b/m.gguf" --dtype f32 >/dev/null 2>&1
}
same() { cmp -s "$work/out-a/m.gguf" "$work/out-b/m.gguf" && echo yes || echo NO; }

failed=0
echo "| type | ggml's file loads and generates | dequantized the same (ggml's file, ours) | same blocks | relative RMS error (ours, ggml's) |"
echo "|---|---|---|---|---|"
for type in "${types[@]}"; do
  "$rwkv" quantize "$work/m.gguf" "$work/ours/m.gguf" "$type" >/dev/null 2>&1
  "$tool" quantize "$work/m.gguf" "$work/ggml/m.gguf" "$work/ours/m.gguf"
  if "$rwkv" generate -m "$work/ggml/m.gguf" -p "Hello" -n 4 --temperature 0 >/dev/null 2>"$work/log"; then
    loads=yes
  else
    loads="NO: $(tail -1 "$work/log")"
    failed=1
  fi
  dequantize_both "$work/ggml/m.gguf"
  same_ggml=$(same)
  dequantize_both "$work/ours/m.gguf"
  same_ours=$(same)
  [ "$same_ggml,$same_ours" = yes,yes ] || failed=1
  # The quantized files themselves, both written out by rwkv convert (keep).
  "$rwkv" convert "$work/ours/m.gguf" "$work/out-a/m.gguf" >/dev/null 2>&1
  "$rwkv" convert "$work/ggml/m.gguf" "$work/out-b/m.gguf" >/dev/null 2>&1
  cmp -s "$work/out-a/m.gguf" "$work/out-b/m.gguf" && blocks=yes || blocks=no
  echo "| $type | $loads | $same_ggml, $same_ours | $blocks | $("$tool" error "$work/ours/m.gguf" "$work/m.gguf"), $("$tool" error "$work/ggml/m.gguf" "$work/m.gguf") |"
done
exit $failed
