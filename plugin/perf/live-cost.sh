#!/bin/bash
# plugin/perf/live-cost.sh: the live cost (`make live-cost`).
# Runs TestLiveCost: audisp-enrich and laurel as plugins of one real auditd
# (plugin/auditdtest: shared flock, scoped rule with its own key, deleted
# afterwards, enabled flag restored, auditd stopped by PID), an exec load of
# RATES exec/s for SECS seconds each, CPU share of one core from
# /proc/PID/stat, latency from the plugin's /metrics. Needs root, kernel
# audit, auditd, laurel, gnuplot-nox. Results: OUT/live.{json,dat,png}.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${RATES:-100,300,1000}
SECS=${SECS:-60}
OUT=${OUT:-build/perf}
GO=${GO:-go}
command -v gnuplot >/dev/null || { echo "live-cost.sh: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
AUDISP_ENRICH_LIVE_RATES=$RATES AUDISP_ENRICH_LIVE_SECONDS=$SECS AUDISP_ENRICH_PERF_OUT=$OUT/live.json \
	"$GO" test -count=1 -v -timeout 60m -run '^TestLiveCost$' ./plugin/perf/
test -s "$OUT/live.dat" || { echo "live-cost.sh: no results in $OUT/live.dat (was the test skipped? it needs root and kernel audit)" >&2; exit 1; }
gnuplot <<GP
set terminal png size 800,450 font ",11"
set output "$OUT/live.png"
set title "CPU share of one core under an exec load (${SECS} s per rate)"
set xlabel "exec/s (tiny static exit program, or /bin/true with AUDISP_ENRICH_LIVE_PROGRAM=true; scoped execve rule)"
set ylabel "% of one core (utime+stime)"
set logscale x
set grid
set key top left
plot "$OUT/live.dat" using 1:2 with linespoints lw 2 title "audisp-enrich", \
     "" using 1:3 with linespoints lw 2 title "laurel", \
     "" using 1:4 with linespoints lw 2 dt 2 title "auditd", \
     3 with lines lc rgb "gray" dt 3 title "target 3%"
GP
echo "live-cost: $OUT/live.json $OUT/live.png"
