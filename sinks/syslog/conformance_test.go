package syslog

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/sinktest"
)

// TestConformance runs the sinks.Sink conformance suite against a real
// rsyslogd (TCP input), reading back what it wrote to its file.
func TestConformance(t *testing.T) {
	testsupport.SkipShort(t, "starts a real rsyslogd")
	in := rsyslogInputs{tcp: testsupport.FreePort(t, "tcp")}
	r := startRsyslog(t, in)
	cfg := Config{Transport: "tcp", Address: fmt.Sprint("127.0.0.1:", in.tcp), WriteTimeout: 5 * time.Second}
	sinktest.Run(t, func(t *testing.T) sinks.Sink {
		s, err := New("conformance", cfg, &metrics.Registry{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T) [][]byte {
		b, _ := os.ReadFile(r.raw)
		return bytes.Split(b, []byte("\n"))
	})
}
