#!/usr/bin/env bash
# The CPU-speed checks of docs/PERFORMANCE.md in one run: makes the benchmark models with the
# exact commands (random weights, official initialisation; files already in DIR are reused),
# runs `rwkv bench` on each and prints markdown tables.
#
#   bench/goals.sh [DIR] [THREADS]          # DIR default /tmp/rwkv-goals, THREADS default 2
#
# Environment: RWKV (default build/rwkv); SIZES (default "0.1B 0.4B 1.5B r4-169M"); TYPES
# (default "f16 q8_0 q4_0 q4_k"); BATCHES (default "1 4 16 64", on the 0.1B f32 and f16 files; set empty for none);
# DECODE (default 64), PREFILL (default 512, f16 files only, also on 1 thread); KEEP_CACHE=1 keeps the files'
# cached pages as they are (by default each file's cache is dropped before its bench). Needs jq. The 1.5B model takes
# 6 GB (f32) + 3 GB (f16) + ~3 GB (quantized) of disk.
set -euo pipefail
shopt -s inherit_errexit  # a failing step inside $(...) stops the script too
die() { echo "goals: $*" >&2; exit 1; }
command -v jq >/dev/null || die "needs jq (apt install jq)"
dir=${1:-/tmp/rwkv-goals}
threads=${2:-2}
rwkv=${RWKV:-$(cd "$(dirname "$0")/.." && pwd)/build/rwkv}
[ -x "$rwkv" ] || die "$rwkv: not found (build first, or set RWKV)"
sizes=${SIZES:-"0.1B 0.4B 1.5B r4-169M"}
types=${TYPES:-"f16 q8_0 q4_0 q4_k"}
batches=${BATCHES-"1 4 16 64"}
decode=${DECODE:-64}
prefill=${PREFILL:-512}

shape() {
  case $1 in
    0.1B) echo "--arch rwkv7 --layers 12 --embd 768 --vocab 65536" ;;
    0.4B) echo "--arch rwkv7 --layers 24 --embd 1024 --vocab 65536" ;;
    1.5B) echo "--arch rwkv7 --layers 24 --embd 2048 --vocab 65536" ;;
    r4-169M) echo "--arch rwkv4 --layers 12 --embd 768 --vocab 50277" ;;
    *) die "unknown size '$1' (0.1B, 0.4B, 1.5B, r4-169M)" ;;
  esac
}

for size in $sizes; do shape "$size" >/dev/null; done  # unknown sizes stop here, before any work
mkdir -p "$dir"

# The model file of a size and type, made on first use.
model() {
  local size=$1 type=$2 base="$dir/$1.gguf" out="$dir/$1-$2.gguf"
  if [ ! -f "$base" ]; then
    echo "making $base ..." >&2
    # shellcheck disable=SC2046
    "$rwkv" init $(shape "$size") -o "$base" >&2
  fi
  case $type in
    f32) out=$base ;;
    f16) [ -f "$out" ] || "$rwkv" convert "$base" "$out" --dtype f16 >&2 ;;
    *) [ -f "$out" ] || "$rwkv" quantize "$base" "$out" "$type" >&2 ;;
  esac
  echo "$out"
}

mib() { echo $(( ($1 + 524288) / 1048576 )); }
f1() { LC_ALL=C printf '%.1f' "$1"; }

echo "rwkv bench, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(date -u +%F)"
echo
# The floor of each decode: its weight bytes over the DRAM read measured just before and after
# its fastest repeat (the higher); beside it the ratio against the run's best reading.
echo "| model | type | file MiB | decode ms/token | GB/s | % of bandwidth floor | % of best reading | prefill tok/s | prefill GFLOP/s | % of fp32 peak | decode peak RSS − file MiB | DRAM GB/s around the decode / best | FMA GFLOP/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for size in $sizes; do
  for type in $types; do
    file=$(model "$size" "$type")
    p=0
    [ "$type" = f16 ] && p=$prefill
    echo "bench $file ..." >&2
    # A reused file may be cached in 4 kB pieces (made by an older build, or copied): dropping
    # its cache lets the bench map it back in 2 MB pieces, as a file rwkv has just written is.
    [ -n "${KEEP_CACHE:-}" ] || dd if="$file" iflag=nocache count=0 status=none
    j=$("$rwkv" bench -m "$file" --threads "$threads" --decode "$decode" --prefill "$p" --json)
    size_b=$(stat -L -c %s "$file")
    rss=$(jq -r .decode_peak_rss_bytes <<<"$j")
    pre="–"; gf="–"; pk="–"
    if [ "$p" -gt 0 ]; then
      pre=$(f1 "$(jq -r .prefill_tok_s <<<"$j")")
      gf=$(f1 "$(jq -r .prefill_gflop_s <<<"$j")")
      pk=$(f1 "$(jq -r .prefill_pct_of_fp32_peak <<<"$j")")
    fi
    echo "| $size | $type | $(mib "$size_b") | $(f1 "$(jq -r .decode_ms_per_token <<<"$j")") | $(f1 "$(jq -r .decode_gb_s <<<"$j")") | $(f1 "$(jq -r .decode_pct_of_bandwidth_floor <<<"$j")") | $(f1 "$(jq -r .decode_pct_of_best_bandwidth <<<"$j")") | $pre | $gf | $pk | $(( (rss - size_b) / 1048576 )) | $(f1 "$(jq -r .decode_bandwidth_gb_s <<<"$j")") / $(f1 "$(jq -r .bandwidth_gb_s <<<"$j")") | $(f1 "$(jq -r .fma_peak_gflop_s <<<"$j")") |"
  done
done

if [ "$prefill" -gt 0 ] && [ "$threads" != 1 ]; then
  echo
  echo "Prefill of $prefill tokens on 1 thread (f16; the FMA peak measured on one core)"
  echo
  echo "| model | prefill tok/s | prefill GFLOP/s | % of fp32 peak | FMA GFLOP/s |"
  echo "|---|---|---|---|---|"
  for size in $sizes; do
    file=$(model "$size" f16)
    echo "bench $file --threads 1 ..." >&2
    j=$("$rwkv" bench -m "$file" --threads 1 --decode 0 --prefill "$prefill" --probe-mib 64 --json)
    echo "| $size | $(f1 "$(jq -r .prefill_tok_s <<<"$j")") | $(f1 "$(jq -r .prefill_gflop_s <<<"$j")") | $(f1 "$(jq -r .prefill_pct_of_fp32_peak <<<"$j")") | $(f1 "$(jq -r .fma_peak_gflop_s <<<"$j")") |"
  done
fi

[ -n "$batches" ] || exit 0
echo
echo "Batched decode, RWKV-7 0.1B: B states advanced per step"
echo
echo "| type | B | ms/step | tokens/s (all streams) | × B = 1 |"
echo "|---|---|---|---|---|"
for type in f32 f16; do
  file=$(model 0.1B "$type")
  one=""
  for b in $batches; do
    echo "bench $file --batch $b ..." >&2
    j=$("$rwkv" bench -m "$file" --threads "$threads" --decode 16 --prefill 0 --batch "$b" --probe-mib 64 --json)
    tps=$(jq -r .decode_tok_s <<<"$j")
    [ -n "$one" ] || one=$tps
    echo "| $type | $b | $(f1 "$(jq -r .decode_ms_per_token <<<"$j")") | $(f1 "$tps") | $(f1 "$(jq -n "$tps / $one")") |"
  done
done
