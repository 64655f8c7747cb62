package plugin

import (
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// TestSignalStopWithinGrace: after SIGTERM, taking in the reader's input
// and the shutdown share one deadline, ShutdownGrace after the signal.
// With input that never pauses (the drain runs to its end) and a network
// sink that delivers nothing (its peer refuses connections, so it waits
// for its deadline), the whole stop stays within ShutdownGrace; before,
// the shutdown started a fresh ShutdownGrace after the drain.
func TestSignalStopWithinGrace(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	cfg := parseConfig(t, fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "down"
type = "syslog"
[sink.syslog]
transport = "tcp"
address = %q
`, dir, refused))
	log := slog.New(slog.DiscardHandler)
	reg := &metrics.Registry{}
	p, err := NewPipeline(cfg, log, reg, false)
	if err != nil {
		t.Fatal(err)
	}
	stats := NewInputStats(reg)
	lines := make(chan Batch)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 1; ; i++ {
			line := fmt.Sprintf("type=DAEMON_END msg=audit(1795618623.899:%d): op=terminate auid=0 uid=0 ses=4294967295 pid=14189 res=success", i)
			stats.QueueLen.Add(1)
			select {
			case lines <- Batch{Lines: []string{line}, First: int64(i)}:
			case <-done:
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	if err := stopOnSignal(p, lines, newStatus(p, stats, cfg, log), log); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if q := reg.Snapshot()[`audisp_enrich_sink_queued{sink="down"}`]; q == 0 {
		t.Fatal("the sink had nothing left to deliver; the test needs a backlog")
	}
	// A margin for a loaded machine's wake-ups; the regression this
	// guards against took about 1.35 s.
	if took > ShutdownGrace+300*time.Millisecond {
		t.Errorf("the stop took %v, want within ShutdownGrace (%v)", took, ShutdownGrace)
	}
}
