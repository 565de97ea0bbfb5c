#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer (fuzz/*_fuzz.cpp): builds them with clang, AddressSanitizer
# and UBSan into build-fuzz, makes a seed corpus and runs each target for a while.
#
#   scripts/fuzz.sh [model|tokenizer|state|request|all] [SECONDS]    # default: all, 300 s per target
#
# model: any bytes as a model file (GGUF, .pth, rwkv.cpp .bin), seeded with tiny models of every
# version and weight type; tokenizer: any bytes as text for the World, 20B and byte tokenizers;
# state: any bytes as a state file of the tiny RWKV-7 model, seeded with files `rwkv generate` saved;
# request: any bytes as a request body to rwkv serve's completions or chat completions endpoint
# (the first byte picks which), seeded with valid requests, with a dictionary of the API's keys.
# The corpus grows in build-fuzz/corpus/TARGET across runs. A finding (crash-*, leak-*, oom-*,
# timeout-*) is written to build-fuzz/findings/TARGET/ and ends the script with a non-zero exit;
# rerun one with build-fuzz/TARGET_fuzz FILE. Needs clang and its runtime (apt install clang
# libclang-rt-14-dev) besides scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${1:-all}
seconds=${2:-300}
[ "$targets" = all ] && targets="model tokenizer state request"
command -v clang++ >/dev/null || { echo "fuzz: needs clang (apt install clang libclang-rt-14-dev)" >&2; exit 1; }
data=$(cd "${RWKV_TEST_DATA:-../shared/data}" && pwd)
export RWKV_TEST_DATA=$data

# -O1: the sanitizers' usual level; the optimised kernels are not what is fuzzed here.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DRWKV_FUZZ=ON \
  -DRWKV_BUILD_TESTS=OFF -DRWKV_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
  -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 >/dev/null
cmake --build build-fuzz -j "$(nproc)"

seeds=build-fuzz/seeds
model_seeds() {
  local dir=$seeds/model rwkv=build-fuzz/rwkv
  [ -d "$dir" ] && return
  mkdir -p "$dir.tmp"
  # Tiny new models of both trainable architectures, in every weight type the loader reads.
  "$rwkv" init --arch rwkv7 --layers 1 --embd 64 --head-size 32 --vocab 64 -o "$dir.tmp/r7.gguf" >/dev/null
  "$rwkv" init --arch rwkv4 --layers 1 --embd 64 --vocab 64 -o "$dir.tmp/r4.gguf" >/dev/null
  for arch in r7 r4; do
    "$rwkv" convert "$dir.tmp/$arch.gguf" "$dir.tmp/$arch-f16.gguf" --dtype f16 >/dev/null
    "$rwkv" convert "$dir.tmp/$arch.gguf" "$dir.tmp/$arch-bf16.gguf" --dtype bf16 >/dev/null
    for type in q8_0 q5_1 q4_0 q4_k q6_k; do
      "$rwkv" quantize "$dir.tmp/$arch.gguf" "$dir.tmp/$arch-$type.gguf" "$type" >/dev/null
    done
  done
  # The official trainer's format and rwkv.cpp's (its smallest file: larger seeds slow every run).
  cp "$data/rwkv_lm/260123_reverse_L2_only_rwkv7.pth" "$data/rwkv_cpp_tiny/tiny-rwkv-5v1-730K-Q5_0.bin" "$dir.tmp/"
  mv "$dir.tmp" "$dir"
}
tokenizer_seeds() {
  local dir=$seeds/tokenizer i=0
  [ -d "$dir" ] && return
  mkdir -p "$dir.tmp"
  # The tokenizer test vectors' texts (many scripts, emoji, combining marks) and some prose.
  while IFS= read -r text; do
    i=$((i + 1))  # (not inside the redirection: that is expanded in base64's own process)
    base64 -d <<<"$text" >"$dir.tmp/vector-$i"
  done < <(jq -r '.text | @base64' "$data/tokenizers/tokenizer_test_vectors.jsonl")
  head -c 2000 "$data/corpus/tinyshakespeare_input.txt" >"$dir.tmp/prose"
  mv "$dir.tmp" "$dir"
}
state_seeds() {
  local dir=$seeds/state model=$data/rwkv_cpp_tiny/tiny-rwkv-7v0-834K-FP32.bin
  [ -d "$dir" ] && return
  mkdir -p "$dir.tmp"
  # Greedy, the default sampler (penalties) and one with every sampler state part in use.
  build-fuzz/rwkv generate -m "$model" -p "Hello" -n 2 --temperature 0 --state-out "$dir.tmp/greedy" >/dev/null
  build-fuzz/rwkv generate -m "$model" -p "Once upon" -n 6 --seed 3 --state-out "$dir.tmp/default" >/dev/null
  build-fuzz/rwkv generate -m "$model" -p "ab" -n 9 --seed 5 --top-k 8 --repeat-penalty 1.1 \
    --state-out "$dir.tmp/penalties" >/dev/null
  mv "$dir.tmp" "$dir"
}

request_seeds() {
  local dir=$seeds/request
  [ -d "$dir" ] && return
  mkdir -p "$dir.tmp"
  # The first byte picks the endpoint: "0" completions, "1" chat completions.
  printf '0{"prompt":"Hello","max_tokens":4,"temperature":0}' >"$dir.tmp/completion"
  printf '0{"prompt":["Hi"],"max_tokens":3,"stream":true,"stop":["l","\\n"],"seed":3,"top_p":0.5,"top_k":4}' \
    >"$dir.tmp/completion-stream"
  printf '1{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":4,"n":1}' >"$dir.tmp/chat"
  printf '1{"messages":[{"role":"developer","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"Hi"}]},%s' \
    '{"role":"assistant","content":"Yes"}],"stream":true,"stream_options":{"include_usage":true},"presence_penalty":0.5,"frequency_penalty":0.1}' \
    >"$dir.tmp/chat-stream"
  mv "$dir.tmp" "$dir"
}

for target in $targets; do
  options=()
  case $target in
    model) model_seeds ;;
    tokenizer) tokenizer_seeds ;;
    state) state_seeds ;;
    request) request_seeds; options=(-dict=fuzz/request.dict) ;;
    *) echo "fuzz: unknown target '$target' (model, tokenizer, state, request, all)" >&2; exit 2 ;;
  esac
  mkdir -p "build-fuzz/corpus/$target" "build-fuzz/findings/$target"
  echo "== fuzzing $target for $seconds s"
  # -rss_limit_mb: a hostile size that makes a loader allocate gigabytes is a finding too.
  "build-fuzz/${target}_fuzz" "build-fuzz/corpus/$target" "$seeds/$target" -max_total_time="$seconds" \
    -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$target/" \
    "${options[@]}"
done
