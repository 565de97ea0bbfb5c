#!/usr/bin/env bash
# The main job of the quick start: build, show a model, convert it, run it both ways, generate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
data="${RWKV_DATA:-../shared/data}"
model="$data/rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"
./build/rwkv info "$model"
./build/rwkv convert "$model" build/tiny-rwkv7.gguf
./build/rwkv logits -m build/tiny-rwkv7.gguf -t 34,105,110 --mode seq -o build/logits-seq.bin
./build/rwkv logits -m "$model" -t 34,105,110 --mode rnn -o build/logits-rnn.bin
echo "wrote build/logits-seq.bin and build/logits-rnn.bin (256 float32 logits each)"
echo "--- generating with the tiny RWKV-5.2 byte-level model:"
./build/rwkv generate -m "$data/rwkv_cpp_tiny/tiny-rwkv-5v2-730K-FP32.bin" -p "The city of" -n 120 --seed 1
