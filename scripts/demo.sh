#!/usr/bin/env bash
# The main job of the quick start: build, then show the engine on real models — our own
# RWKV-7 trained on tinyshakespeare (models/README.md) and a tiny rwkv.cpp test model, read
# both ways (sequence and RNN mode) — and generate text.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
data="${RWKV_DATA:-../shared/data}"
ours=models/shakespeare-rwkv7-4x256.gguf
./build/rwkv info "$ours"
echo "--- generating with $ours (trained by rwkv train, 23 minutes on 2 CPU cores):"
./build/rwkv generate -m "$ours" -p "ROMEO:" -n 300 --seed 1
echo
model="$data/rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin"
if [[ -r $model ]]; then
  echo "--- an rwkv.cpp file: convert to GGUF, then its logits in sequence mode and in RNN mode:"
  ./build/rwkv convert "$model" build/tiny-rwkv7.gguf
  ./build/rwkv logits -m build/tiny-rwkv7.gguf -t 34,105,110 --mode seq -o build/logits-seq.bin
  ./build/rwkv logits -m "$model" -t 34,105,110 --mode rnn -o build/logits-rnn.bin
  cmp build/logits-seq.bin build/logits-rnn.bin >/dev/null && echo "sequence mode == RNN mode (bit for bit)" ||
    echo "wrote build/logits-seq.bin and build/logits-rnn.bin (256 float32 logits each)"
fi
