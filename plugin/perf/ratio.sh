#!/bin/bash
# plugin/perf/ratio.sh: enrichment cost (`make bench-ratio`), issue 3's target
# "all enrichers on >= 80% of the throughput without enrichment" (issue 18:
# >= 0.75 with every SigmaHQ Linux rule loaded: `make bench-ratio
# SIGMA_RULES=shared`, or AUDISP_ENRICH_SIGMA_RULES=shared for the script).
# Runs BenchmarkReplayRatio (plugin: parse, reassemble, enrichment pool,
# JSON, file sink on /dev/null) RUNS times. Each run feeds the corpus
# BENCHTIME (default 5x) times through a new bare pipeline and as often
# through a new enriched one, interleaved (bare first, then enriched first,
# and so on), so both sides run in the same seconds of the machine; only
# feeding and closing are timed (building a pipeline is not). A run's
# ratio is
# the enriched pipeline's records/s over the bare one's. Prints every
# run's figures, the median of the runs' ratios, and the medians of
# records/s and of CPU µs per record. PROCS sets GOMAXPROCS (default: every
# core). IMA=1 adds an INTEGRITY_RULE record to every exec event (withIMA
# in plugin/bench_test.go), so that the hash enrichers (package trust,
# blocklist) judge hashes; the package index's hashes are kept in
# $OUT/packages-state.
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-/var/tmp/audisp-enrich-corpus.log}
RUNS=${RUNS:-16}
BENCHTIME=${BENCHTIME:-5x}
OUT=${OUT:-build/perf}
GO=${GO:-go}
test -s "$CORPUS" || { echo "ratio.sh: $CORPUS missing (make corpus)" >&2; exit 1; }
mkdir -p "$OUT/packages-state"
OUT=$(cd "$OUT" && pwd)
"$GO" test -c -o "$OUT/plugin.test" ./plugin/
: > "$OUT/ratio.txt"
for i in $(seq "$RUNS"); do
	(cd plugin && env ${PROCS:+GOMAXPROCS=$PROCS} ${IMA:+AUDISP_ENRICH_BENCH_IMA=$IMA} \
		AUDISP_ENRICH_BENCH_STATE="$OUT/packages-state" AUDISP_ENRICH_CORPUS="$CORPUS" "$OUT/plugin.test" \
		-test.run '^$' -test.bench '^BenchmarkReplayRatio$' -test.benchtime "$BENCHTIME" 2>/dev/null |
		grep -E '^BenchmarkReplayRatio' >> "$OUT/ratio.txt") || true
	echo "run $i/$RUNS done" >&2
done
awk -v procs="${PROCS:-all}" -v ima="$([ -n "${IMA:-}" ] && echo added || echo none)" '
	{ n++; for (i = 1; i <= NF; i++) { v = $(i-1)
		if ($i == "bare-records/s") b[n] = v; if ($i == "enriched-records/s") e[n] = v
		if ($i == "bare-cpu-µs/record") cb[n] = v; if ($i == "enriched-cpu-µs/record") ce[n] = v
		if ($i == "ratio") p[n] = v } }
	function median(a, n,   i, j, t, s) { for (i = 1; i <= n; i++) s[i] = a[i]
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
		return n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2 }
	END { if (n == 0) { print "ratio.sh: no results" > "/dev/stderr"; exit 1 }
		for (i = 1; i <= n; i++) printf "run %d: bare %d enriched %d records/s, ratio %.3f\n", i, b[i], e[i], p[i]
		printf "GOMAXPROCS=%s, IMA records %s, %d runs: median ratio %.3f (targets: >= 0.80, issue 3; >= 0.75 with all SigmaHQ rules, issue 18)\n", procs, ima, n, median(p, n)
		printf "median records/s: bare %d, enriched %d\n", median(b, n), median(e, n)
		printf "median CPU µs/record: bare %.3f, enriched %.3f (bare/enriched %.3f)\n", median(cb, n), median(ce, n), median(cb, n) / median(ce, n) }
' "$OUT/ratio.txt" | tee "$OUT/ratio.md"
