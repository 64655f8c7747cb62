#!/bin/bash
# plugin/perf/e2e.sh: end-to-end throughput (`make bench-e2e`).
# Runs BenchmarkEndToEnd over CORPUS: audisp-enrich replay into a kfake
# broker (disk and memory buffers; kcat re-counts), into rsyslogd, and
# syslog-ng's linux-audit() source with kafka-c() for comparison.
# syslog-ng-core conflicts with rsyslog in Debian, so its packages are
# unpacked (not installed) under SYSLOG_NG_ROOT; their libraries
# (libivykis0 libnet1 librdkafka1 libwrap0 libjson-c5 libpcre3) are
# installed with apt-get. Needs kcat and rsyslog.
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-/var/tmp/audisp-enrich-corpus.log}
COUNT=${COUNT:-3}
SYSLOG_NG_ROOT=${SYSLOG_NG_ROOT:-/var/tmp/audisp-enrich-peers/syslog-ng}
GO=${GO:-go}
test -s "$CORPUS" || { echo "e2e.sh: $CORPUS missing (make corpus)" >&2; exit 1; }
if [ ! -x "$SYSLOG_NG_ROOT/usr/sbin/syslog-ng" ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		libivykis0 libnet1 librdkafka1 libwrap0 libjson-c5 libpcre3 >/dev/null
	mkdir -p "$SYSLOG_NG_ROOT"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download syslog-ng-core syslog-ng-scl syslog-ng-mod-rdkafka 2>/dev/null)
	for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$SYSLOG_NG_ROOT"; done
	rm -rf "$tmp"
fi
AUDISP_ENRICH_CORPUS=$CORPUS SYSLOG_NG_ROOT=$SYSLOG_NG_ROOT \
	"$GO" test -run '^$' -bench '^BenchmarkEndToEnd$' -benchtime 1x -count "$COUNT" -timeout 30m ./plugin/perf/
