#!/usr/bin/env bash
# Draws a run's loss and metric curves (RUN_DIR/metrics.csv, one row per epoch) to a PNG with
# gnuplot: one line per column, log-scaled y, epochs on x.
#   scripts/plot_metrics.sh RUN_DIR [OUTPUT.png]      (default: RUN_DIR/curves.png)
set -euo pipefail
run="${1:?usage: $0 RUN_DIR [OUTPUT.png]}"
csv="$run/metrics.csv"
out="${2:-$run/curves.png}"
[[ -s "$csv" ]] || { echo "plot_metrics: $csv is missing or empty" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot_metrics: gnuplot is not installed (scripts/setup.sh installs it)" >&2; exit 1; }

header="$(head -n 1 "$csv")"
IFS=',' read -r -a cols <<<"$header"
# Columns 1-2 are epoch and step, then the losses and metrics up to lr (precision and seconds
# follow it).
last=0
for i in "${!cols[@]}"; do [[ ${cols[$i]} == lr ]] && last=$i; done
if (( last < 3 )); then echo "plot_metrics: no metric columns in $csv" >&2; exit 1; fi
if (( $(wc -l <"$csv") < 2 )); then echo "plot_metrics: $csv has no rows yet" >&2; exit 1; fi

gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced
set output '$out'
set datafile separator ','
set key outside right
set logscale y
set grid
set xlabel 'epoch'
set xtics 1
set title '$(basename "$run")'
plot for [c=3:$last] '$csv' using 1:c with linespoints title columnheader(c)
GP
[[ -s "$out" ]] || { echo "plot_metrics: gnuplot wrote nothing" >&2; exit 1; }
echo "$out"
