package remote

import (
	"bytes"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/sinktest"
)

// TestConformance runs the sinks.Sink conformance suite against a real
// auditd collector (plugin/auditdtest), reading back its audit.log. Each
// message is one audit event whose rule key is the suite's id.
func TestConformance(t *testing.T) {
	testsupport.SkipShort(t, "starts a real auditd collector (root, kernel audit)")
	if err := auditdtest.Available(); err != nil {
		t.Skip(err)
	}
	port := testsupport.FreePort(t, "tcp")
	// The suite connects again right after Close; auditd may not have
	// reaped the previous connection yet.
	a := collector(t, port, map[string]string{"tcp_max_per_addr": "16"})
	var serial atomic.Int64
	sinktest.Suite{
		New: func(t *testing.T) sinks.Sink {
			s, err := New("conformance", Config{Address: fmt.Sprint("127.0.0.1:", port), AckTimeout: 2 * time.Second,
				DialTimeout: time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, &metrics.Registry{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Message: func(id string) sinks.Message {
			return sinks.Message{Value: event(int(serial.Add(1)), id)}
		},
		Read: func(t *testing.T) [][]byte {
			b, _ := os.ReadFile(a.LogFile)
			return bytes.Split(b, []byte("\n"))
		},
	}.Run(t)
}
