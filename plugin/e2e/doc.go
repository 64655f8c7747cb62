// Package e2e holds the end-to-end and reliability tests of audisp-enrich.
//
// The tests build the real binary (CGO_ENABLED=0, like the package) and run
// it as users do: `audisp-enrich replay --config FILE` and plugin mode with
// the audit stream on stdin, fed either by the test or by a real auditd
// (plugin/auditdtest). Every sink talks to its real peer on loopback: a
// Kafka-protocol broker (franz-go's kfake, in the test process) read back
// with kcat, an rsyslogd started by the test writing to a file, and an
// auditd collector (tcp_listen_port) searched with ausearch. Events are
// counted by unique event id against the input, and every JSON document is
// validated against docs/schema/event.schema.json.
//
// The reliability tests (outage, restart, crash, full buffer, real auditd
// outage) run a short version by default (seconds of outage, for make
// test) and the long one when AUDISP_RELIABILITY_FULL=1 (make
// reliability). docs/reliability.md describes the method and quotes the
// figures.
//
// The package has no code besides its tests.
package e2e
