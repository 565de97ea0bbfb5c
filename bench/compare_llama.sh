#!/usr/bin/env bash
# Decode and prefill speed of `rwkv bench` and, when LLAMA_CPP_DIR is set, llama.cpp's
# llama-bench on the same GGUF file, printed as one markdown table.
#
#   bench/compare_llama.sh MODEL.gguf [THREADS]
#   LLAMA_CPP_DIR=~/llama.cpp/build bench/compare_llama.sh model.gguf 4
#
# Environment: RWKV (the rwkv program; default build/rwkv), LLAMA_CPP_DIR (a llama.cpp build
# folder containing bin/llama-bench), N_PROMPT (default 512), N_GEN (default 64).
# Reads the JSON with jq, or python3 where jq is missing.
# llama-bench reports the mean of its repetitions (5 by default); rwkv bench the fastest of its
# (--repeat 3 by default), each after a warm-up.
set -euo pipefail

die() { echo "compare_llama: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: bench/compare_llama.sh MODEL.gguf [THREADS]"
model=$1
threads=${2:-$(nproc)}
n_prompt=${N_PROMPT:-512}
n_gen=${N_GEN:-64}
rwkv=${RWKV:-$(dirname "$0")/../build/rwkv}
[ -f "$model" ] || die "$model: no such file"
[ -x "$rwkv" ] || die "$rwkv: not found (build first, or set RWKV)"
llama_bench=${LLAMA_CPP_DIR:+$LLAMA_CPP_DIR/bin/llama-bench}
[ -z "$llama_bench" ] || [ -x "$llama_bench" ] || die "$llama_bench: not found"

if command -v jq >/dev/null; then
  json_key() { jq -r --arg k "$1" '.[$k]'; }
  # avg_ts of the llama-bench test that has only prompt tokens (pp) or only generated ones (tg)
  llama_ts() {
    if [ "$1" = pp ]; then jq -r '[.[] | select(.n_gen == 0)][0].avg_ts'
    else jq -r '[.[] | select(.n_prompt == 0)][0].avg_ts'; fi
  }
elif command -v python3 >/dev/null; then
  json_key() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
  llama_ts() {
    python3 -c '
import json, sys
key = "n_gen" if sys.argv[1] == "pp" else "n_prompt"
print(next(t["avg_ts"] for t in json.load(sys.stdin) if t[key] == 0))' "$1"
  }
else
  die "needs jq or python3 to read JSON"
fi
# A number with one decimal; anything else (a missing key, a failed run) stops the script.
fmt() {
  [[ $1 =~ ^[0-9.eE+-]+$ ]] || die "unexpected value '$1' in the JSON"
  LC_ALL=C printf '%.1f' "$1"
}

echo "rwkv bench: $model, $threads threads ..." >&2
ours=$("$rwkv" bench -m "$model" --threads "$threads" --decode "$n_gen" --prefill "$n_prompt" --json)

decode=$(json_key decode_tok_s <<<"$ours") && decode=$(fmt "$decode")
prefill=$(json_key prefill_tok_s <<<"$ours") && prefill=$(fmt "$prefill")
rows="| rwkv | $threads | $decode | $prefill |"

if [ -n "$llama_bench" ]; then
  echo "llama-bench: $model, $threads threads ..." >&2
  theirs=$("$llama_bench" -m "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" -o json)
  decode=$(llama_ts tg <<<"$theirs") && decode=$(fmt "$decode")
  prefill=$(llama_ts pp <<<"$theirs") && prefill=$(fmt "$prefill")
  rows+=$'\n'"| llama.cpp | $threads | $decode | $prefill |"
else
  echo "(set LLAMA_CPP_DIR to a llama.cpp build folder to add llama-bench)" >&2
fi

echo "| engine | threads | decode tok/s (tg$n_gen) | prefill tok/s (pp$n_prompt) |"
echo "|---|---:|---:|---:|"
echo "$rows"
