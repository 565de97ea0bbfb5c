#!/usr/bin/env bash
# The main job of the quick start: build, then show a model and run it both ways.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
data="${RWKV_DATA:-../shared/data}"
model="$data/rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"
./build/rwkv info "$model"
./build/rwkv convert "$model" build/tiny-rwkv7.gguf
./build/rwkv logits -m build/tiny-rwkv7.gguf -t 34,105,110 --mode seq -o build/logits-seq.bin
./build/rwkv logits -m "$model" -t 34,105,110 --mode rnn -o build/logits-rnn.bin
echo "logits of \"in (seq mode, from GGUF) vs (rnn mode, from .bin):"
cmp build/logits-seq.bin build/logits-rnn.bin && echo "  identical" || echo "  differ (within float rounding)"
