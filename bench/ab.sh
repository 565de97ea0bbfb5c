#!/usr/bin/env bash
# Which of two builds is faster, on a machine whose speed moves from minute to minute: runs
# `rwkv bench` with each in turn, PAIRS times (the order swapped every other pair, so that a
# drift falls on both alike), prints each pair, then the median of the per-pair ratios (> 1:
# NEW is faster) and its range. The A/B figures of docs/PERFORMANCE.md are measured this way.
#
#   bench/ab.sh OLD_RWKV NEW_RWKV MODEL [PAIRS] [BENCH OPTIONS...]
#   bench/ab.sh /tmp/rwkv-before build/rwkv /tmp/m-f16.gguf 8 --threads 2 --decode 32 --prefill 0 --batch 16
#
# PAIRS defaults to 6. The bench options default to --threads 2 --decode 32 --prefill 0
# --probe-mib 64 (a ratio of times needs no true bandwidth reading); given, they replace those
# (--json is always added). FIELD (default decode_ms_per_token) is the figure of the JSON
# compared: for a time (…_ms_…) old/new, for a rate (…_tok_s, …_gflop_s, …_gb_s) new/old.
set -euo pipefail

die() { echo "ab: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: bench/ab.sh OLD_RWKV NEW_RWKV MODEL [PAIRS] [BENCH OPTIONS...]"
old=$1 new=$2 model=$3
shift 3
pairs=6
if [ $# -gt 0 ] && [[ $1 != -* ]]; then
  pairs=$1
  shift
fi
[[ $pairs =~ ^[1-9][0-9]*$ ]] || die "PAIRS must be a positive whole number, not '$pairs'"
for b in "$old" "$new"; do [ -x "$b" ] || die "$b: not an executable rwkv"; done
[ -f "$model" ] || die "$model: no such file"
options=("$@")
[ ${#options[@]} -gt 0 ] || options=(--threads 2 --decode 32 --prefill 0 --probe-mib 64)
field=${FIELD:-decode_ms_per_token}
[[ $field =~ ^[a-z0-9_]+$ ]] || die "FIELD '$field' is not a key of rwkv bench's JSON"
case $field in
  *_tok_s | *_gflop_s | *_gb_s) higher_is_faster=1 ;;
  *) higher_is_faster=0 ;;
esac

# The number after "FIELD": in the JSON object (one key of that name in it); "none" for null.
json_number() {
  local v
  v=$(grep -o "\"$1\": *[-0-9.eE+]*" | head -1 | sed 's/.*: *//') || true
  [[ $v =~ ^-?[0-9] ]] && echo "$v" || echo none
}

# One figure from one run of `rwkv bench` by the build $1.
measure() {
  local out value
  out=$("$1" bench -m "$model" "${options[@]}" --json) || die "$1 bench failed"
  value=$(json_number "$field" <<<"$out")
  [ "$value" != none ] || die "'$field' is not a number in rwkv bench's JSON (a part left out?)"
  echo "$value"
}

printf '| pair | old %s | new %s | speed-up |\n|---|---|---|---|\n' "$field" "$field"
results=()
for ((i = 1; i <= pairs; ++i)); do
  if ((i % 2)); then
    a=$(measure "$old")
    b=$(measure "$new")
  else
    b=$(measure "$new")
    a=$(measure "$old")
  fi
  r=$(awk -v a="$a" -v b="$b" -v h="$higher_is_faster" 'BEGIN {
    if (a <= 0 || b <= 0) exit 1
    printf "%.3f", h ? b / a : a / b }') || die "pair $i: a figure is not positive ($a, $b)"
  printf '| %d | %s | %s | %s |\n' "$i" "$a" "$b" "$r"
  results+=("$r $a $b")
done

# The medians of the ratios and of each side's figures (the mean of the middle two for an even count).
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratios=$(printf '%s\n' "${results[@]}" | cut -d' ' -f1)
echo
printf '%s over %d pairs: median speed-up %s (%s to %s); medians old %s, new %s\n' "$field" "$pairs" \
  "$(median <<<"$ratios")" "$(sort -g <<<"$ratios" | head -1)" "$(sort -g <<<"$ratios" | tail -1)" \
  "$(printf '%s\n' "${results[@]}" | cut -d' ' -f2 | median)" "$(printf '%s\n' "${results[@]}" | cut -d' ' -f3 | median)"
