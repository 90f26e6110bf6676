#!/usr/bin/env bash
# plot.sh - bench/plot.png from bench/e2e.dat and bench/priority.dat (bench/plot.gp); installs
# gnuplot-nox when gnuplot is missing (a benchmark's own extra, not in scripts/deps.sh)
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v gnuplot > /dev/null; then
	echo "plot.sh: gnuplot missing: apt-get install gnuplot-nox" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox > /dev/null
fi
for f in e2e.dat priority.dat; do
	[ -s "$f" ] || { echo "plot.sh: bench/$f missing: run bench/${f%.dat}.sh first" >&2; exit 1; }
done
gnuplot plot.gp
echo "bench/plot.png"
