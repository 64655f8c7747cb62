package sinks

import (
	"maps"
	"sync"
	"testing"
	"time"
)

type reports struct {
	mu  sync.Mutex
	got []AlertReport
}

func (r *reports) add(rep AlertReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rep)
}

func (r *reports) snapshot() []AlertReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]AlertReport(nil), r.got...)
}

// The first loss is reported at once; the rest of the interval is summed
// into one report per sink with its counts by reason and the total.
func TestAlertsCoalesce(t *testing.T) {
	var r reports
	a := NewAlerts(100*time.Millisecond, r.add)
	a.Add("kafka", 2, "io_error")
	if got := r.snapshot(); len(got) != 1 || got[0].Count() != 2 || got[0].Total != 2 || got[0].Reasons() != "io_error" {
		t.Fatalf("first loss: %+v", got)
	}
	for range 50 {
		a.Add("kafka", 1, "drop_oldest")
		a.Add("kafka", 2, "io_error")
		a.Add("syslog", 1, "closed")
	}
	for deadline := time.Now().Add(5 * time.Second); len(r.snapshot()) < 4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(120 * time.Millisecond) // a late fifth report would show here, and the interval ends
	got := r.snapshot()
	if len(got) != 4 {
		t.Fatalf("%d reports, want 4 (kafka twice, syslog twice): %+v", len(got), got)
	}
	var kafka, syslog []AlertReport
	for _, rep := range got {
		if rep.Sink == "kafka" {
			kafka = append(kafka, rep)
		} else {
			syslog = append(syslog, rep)
		}
	}
	if len(kafka) != 2 || !maps.Equal(kafka[1].Counts, map[string]uint64{"drop_oldest": 50, "io_error": 100}) ||
		kafka[1].Total != 152 || kafka[1].Detail() != "drop_oldest=50 io_error=100" || kafka[1].Reasons() != "drop_oldest,io_error" {
		t.Fatalf("kafka reports %+v", kafka)
	}
	if len(syslog) != 2 || syslog[0].Count() != 1 || syslog[1].Count() != 49 || syslog[1].Total != 50 {
		t.Fatalf("syslog reports %+v", syslog)
	}
	a.Add("kafka", 7, "io_error") // the interval is over: at once
	a.Add("kafka", 3, "io_error") // waits
	if rest := a.Close(); len(r.snapshot()) != 5 || len(rest) != 1 || rest[0].Count() != 3 || rest[0].Total != 162 {
		t.Fatalf("Close returned %+v after %d reports", rest, len(r.snapshot()))
	}
	a.Add("kafka", 1, "closed") // after Close: totalled only, no report
	time.Sleep(150 * time.Millisecond)
	if n := len(r.snapshot()); n != 5 {
		t.Fatalf("%d reports after Close", n)
	}
}

// An emit that loses a message itself (as an alert queued into the sink
// it reports on would) does not feed on itself: still one report per
// interval, no recursion.
func TestAlertsDoNotFeedOnThemselves(t *testing.T) {
	var r reports
	var a *Alerts
	a = NewAlerts(50*time.Millisecond, func(rep AlertReport) {
		r.add(rep)
		a.Add(rep.Sink, 1, "drop_oldest")
	})
	a.Add("kafka", 1, "io_error")
	time.Sleep(300 * time.Millisecond)
	a.Close()
	if n := len(r.snapshot()); n < 2 || n > 8 {
		t.Fatalf("%d reports in 300 ms at one per 50 ms", n)
	}
}
