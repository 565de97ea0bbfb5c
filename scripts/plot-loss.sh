#!/usr/bin/env bash
# Draws the loss curve of a `rwkv train` CSV log as a PNG (needs gnuplot: apt install gnuplot-nox).
#   scripts/plot-loss.sh RUN.csv OUT.png [TITLE]
# Training loss per step and validation loss, in nats per token, against wall-clock minutes.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 RUN.csv OUT.png [TITLE]" >&2
  exit 2
fi
csv=$1 png=$2 title=${3:-$(basename "$csv" .csv)}
command -v gnuplot >/dev/null || { echo "error: gnuplot not found (apt install gnuplot-nox)" >&2; exit 1; }
[[ -r $csv ]] || { echo "error: cannot read $csv" >&2; exit 1; }
head -1 "$csv" | grep -q '^step,loss,val_loss,lr,grad_norm,tokens_per_s,gflop_s,elapsed_s' ||
  { echo "error: $csv is not a rwkv train log" >&2; exit 1; }
gnuplot <<EOF
set terminal pngcairo size 900,540 font "sans,11"
set output "$png"
set datafile separator ","
set datafile missing ""
set key top right
set grid
set title "$title"
set xlabel "wall-clock minutes"
set ylabel "loss (nats per token)"
set yrange [1:4]
plot "$csv" every ::1 using (\$8/60):2 with lines lw 1 lc rgb "#8fb3d9" title "training (per step)", \
     "$csv" every ::1 using (\$8/60):(\$3 > 0 ? \$3 : 1/0) with linespoints lw 2 pt 7 ps 0.8 lc rgb "#c0392b" title "validation"
EOF
echo "wrote $png"
