#!/bin/bash
# plugin/perf/peers.sh: the peer benchmark (`make bench-peers`).
# Builds go-libaudit v2.6.2 cmd/auparse in a scratch module outside the
# repository (PEERS_DIR), builds peerbench, and runs laurel, go-libaudit and
# audisp-enrich over CORPUS, alternating, RUNS rounds. Needs: laurel
# (Debian), the Go proxy for go-libaudit, bin/audisp-enrich (make build) and
# the corpus (make corpus); gnuplot-nox for the chart (without it, the tables
# only). Results: OUT/peers.{md,json,png}.
# PROCS=1,2 also runs audisp-enrich with GOMAXPROCS=1 and =2 in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-/var/tmp/audisp-enrich-corpus.log}
RUNS=${RUNS:-5}
OUT=${OUT:-build/perf}
PEERS_DIR=${PEERS_DIR:-/var/tmp/audisp-enrich-peers}
GO=${GO:-go}
PROCS=${PROCS:-}
GOLIBAUDIT_VERSION=v2.6.2

command -v laurel >/dev/null || { echo "peers.sh: laurel not installed (apt-get install laurel)" >&2; exit 1; }
CHART=true
if ! command -v gnuplot >/dev/null; then
	echo "peers.sh: gnuplot not installed (apt-get install gnuplot-nox): no chart, tables only" >&2
	CHART=false
fi
test -x bin/audisp-enrich || { echo "peers.sh: bin/audisp-enrich missing (make build)" >&2; exit 1; }
test -s "$CORPUS" || { echo "peers.sh: $CORPUS missing (make corpus)" >&2; exit 1; }

mkdir -p "$PEERS_DIR/golibaudit" "$OUT"
if ! "$PEERS_DIR/auparse" -h 2>&1 | grep -q -- '-format'; then
	(
		cd "$PEERS_DIR/golibaudit"
		# A throwaway module that only pins go-libaudit; not part of the repo.
		test -f go.mod || printf 'module scratch/golibaudit\n\ngo 1.26\n' > go.mod
		GOFLAGS=-mod=mod "$GO" get "github.com/elastic/go-libaudit/v2/cmd/auparse@$GOLIBAUDIT_VERSION"
		CGO_ENABLED=0 GOFLAGS=-mod=mod "$GO" build -trimpath -o "$PEERS_DIR/auparse" github.com/elastic/go-libaudit/v2/cmd/auparse
	)
fi
"$GO" build -o "$OUT/peerbench" ./plugin/perf/peerbench
"$OUT/peerbench" -corpus "$CORPUS" -runs "$RUNS" -enrich bin/audisp-enrich \
	-auparse "$PEERS_DIR/auparse" -laurel laurel -work "$PEERS_DIR" -out "$OUT" -procs "$PROCS" -chart="$CHART"
