#!/bin/bash
# plugin/perf/profile.sh: CPU and allocation profiles (`make profile`).
#   pipeline: BenchmarkPipeline (plugin/audit: parse + reassemble + JSON), GOMAXPROCS=1
#   replay:   BenchmarkReplay/enriched (plugin: the whole replay pipeline, every local enricher)
#   live:     BenchmarkLivePaced (plugin mode fed at 7000 records/s, CPU only)
#   bin:      bin/audisp-enrich replay --cpuprofile over CORPUS (make build), as
#             make bench-peers runs it: with the peers' config (every local
#             enricher, full profile) when PEER_CONFIG exists, else the
#             built-in config; replay's own defaults (one core, GOGC=50)
# Profiles, test binaries and `pprof -top` listings go to OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-/var/tmp/audisp-enrich-corpus.log}
OUT=${OUT:-build/perf/profile}
GO=${GO:-go}
test -s "$CORPUS" || { echo "profile.sh: $CORPUS missing (make corpus)" >&2; exit 1; }
mkdir -p "$OUT"
export AUDISP_ENRICH_CORPUS=$CORPUS
GOMAXPROCS=1 "$GO" test -run '^$' -bench '^BenchmarkPipeline$' -benchmem -count 1 \
	-cpuprofile "$OUT/pipeline.cpu.prof" -memprofile "$OUT/pipeline.mem.prof" -o "$OUT/audit.test" ./plugin/audit/
"$GO" test -run '^$' -bench '^BenchmarkReplay$/^enriched$' -benchmem -count 1 \
	-cpuprofile "$OUT/replay.cpu.prof" -memprofile "$OUT/replay.mem.prof" -o "$OUT/plugin.test" ./plugin/
PEER_CONFIG=${PEER_CONFIG:-/var/tmp/audisp-enrich-peers/audisp-enrich.toml}
cfg=()
if [ -f "$PEER_CONFIG" ]; then cfg=(--config "$PEER_CONFIG"); fi
bin/audisp-enrich replay "${cfg[@]}" --cpuprofile "$OUT/bin.cpu.prof" "$CORPUS" > /dev/null
cp bin/audisp-enrich "$OUT/bin.test" # the binary the profile belongs to
CGO_ENABLED=0 "$GO" test -run '^$' -bench '^BenchmarkLivePaced$' -benchtime 10x -count 1 \
	-cpuprofile "$OUT/live.cpu.prof" -o "$OUT/perf.test" ./plugin/perf/
for p in pipeline:audit replay:plugin live:perf bin:bin; do
	name=${p%%:*} bin=$OUT/${p#*:}.test
	"$GO" tool pprof -top -nodecount=25 "$bin" "$OUT/$name.cpu.prof" > "$OUT/$name.cpu.top" 2>/dev/null
	"$GO" tool pprof -top -cum -nodecount=40 "$bin" "$OUT/$name.cpu.prof" > "$OUT/$name.cpu.cum" 2>/dev/null
	if [ -f "$OUT/$name.mem.prof" ]; then
		"$GO" tool pprof -sample_index=alloc_space -top -nodecount=20 "$bin" "$OUT/$name.mem.prof" > "$OUT/$name.alloc.top" 2>/dev/null
	fi
	echo "== $name: CPU (flat) =="; sed -n '1,/flat%/d;1,15p' "$OUT/$name.cpu.top" | head -15
done
echo "profiles and listings: $OUT"
