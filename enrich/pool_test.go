package enrich

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// jitter sleeps a random time so that workers finish out of order, and fails
// every 7th event.
type jitter struct{}

func (jitter) Name() string { return "jitter" }

func (jitter) Enrich(_ context.Context, ev *audit.Event) error {
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	ev.AddTag("seen")
	if ev.ID.Serial%7 == 0 {
		return errors.New("boom")
	}
	return nil
}

type slow struct{}

func (slow) Name() string { return "slow" }

func (slow) Enrich(_ context.Context, ev *audit.Event) error {
	if ev.ID.Serial == 3 {
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// TestPoolKeepsOrder: events leave in submission order whatever the
// workers' timing; errors and slow calls become warnings, never losses; the
// encoder's bytes reach out with their event.
func TestPoolKeepsOrder(t *testing.T) {
	const n = 2000
	var got []uint32
	var encodedOK = true
	reg := &metrics.Registry{}
	p := NewPool([]Enricher{jitter{}, slow{}}, 4, 16, time.Millisecond, reg,
		func(_ int, ev *audit.Event, dst []byte) []byte {
			return append(dst, byte(ev.ID.Serial))
		},
		func(ev *audit.Event, enc []byte) {
			got = append(got, ev.ID.Serial)
			if len(enc) != 1 || enc[0] != byte(ev.ID.Serial) {
				encodedOK = false
			}
			if len(ev.Tags) != 1 {
				t.Errorf("event %d: tags %v", ev.ID.Serial, ev.Tags)
			}
			wantWarn := ev.ID.Serial%7 == 0
			hasWarn := false
			for _, w := range ev.Warnings {
				if strings.HasPrefix(w, "jitter: boom") {
					hasWarn = true
				}
			}
			if wantWarn != hasWarn {
				t.Errorf("event %d: warnings %v", ev.ID.Serial, ev.Warnings)
			}
			if w := strings.Join(ev.Warnings, ";"); ev.ID.Serial == 3 && !strings.Contains(w, "slow: took") && !strings.Contains(w, "enrichers took") {
				t.Errorf("slow call not reported: %v", ev.Warnings)
			}
		})
	for i := 0; i < n; i++ {
		p.Submit(&audit.Event{ID: audit.EventID{Serial: uint32(i)}})
	}
	p.Close()
	if len(got) != n {
		t.Fatalf("%d events out, want %d", len(got), n)
	}
	for i, s := range got {
		if s != uint32(i) {
			t.Fatalf("event %d left at position %d: order not kept", s, i)
		}
	}
	if !encodedOK {
		t.Error("encoded bytes did not travel with their event")
	}
	snap := reg.Snapshot()
	if snap[`audisp_enrich_enricher_errors_total{enricher="jitter"}`] != float64((n+6)/7) {
		t.Errorf("error counter = %v", snap[`audisp_enrich_enricher_errors_total{enricher="jitter"}`])
	}
}

// slowPair is slow for serials 3 and 4.
type slowPair struct{}

func (slowPair) Name() string { return "slow" }

func (slowPair) Enrich(_ context.Context, ev *audit.Event) error {
	if ev.ID.Serial == 3 || ev.ID.Serial == 4 {
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// TestPoolTiming: one event in latencySample, the first included, has
// each call timed; an
// untimed slow event gets a chain warning and makes the next event timed,
// which names the slow enricher and counts it.
func TestPoolTiming(t *testing.T) {
	reg := &metrics.Registry{}
	warnings := map[uint32]string{}
	p := NewPool([]Enricher{slowPair{}}, 1, 4, time.Millisecond, reg, nil, func(ev *audit.Event, _ []byte) {
		warnings[ev.ID.Serial] = strings.Join(ev.Warnings, ";")
	})
	const n = 4 * latencySample
	for i := 0; i < n; i++ {
		p.Submit(&audit.Event{ID: audit.EventID{Serial: uint32(i)}})
	}
	p.Close()
	// Serial 3 is the 4th event: not sampled.
	if w := warnings[3]; !strings.Contains(w, "enrichers took") {
		t.Errorf("event 3: warnings %q, want the chain warning", w)
	}
	if w := warnings[4]; !strings.Contains(w, "slow: took") {
		t.Errorf("event 4: warnings %q, want the slow enricher named", w)
	}
	for s, w := range warnings {
		if s != 3 && s != 4 && w != "" {
			t.Errorf("event %d: unexpected warnings %q", s, w)
		}
	}
	snap := reg.Snapshot()
	if got := snap[`audisp_enrich_enricher_slow_total{enricher="slow"}`]; got != 1 {
		t.Errorf("slow counter = %v, want 1 (event 4)", got)
	}
	if got := snap[`audisp_enrich_enricher_calls_total{enricher="slow"}`]; got != n {
		t.Errorf("calls = %v, want %d", got, n)
	}
	// Timed: the first event and every latencySample-th after it (serials
	// 0, 32, 64, 96), plus event 4 and event 5 (after the slow event 4).
	if got, want := snap[`audisp_enrich_enricher_seconds{enricher="slow"}_count`], float64(n/latencySample+2); got != want {
		t.Errorf("latency samples = %v, want %v", got, want)
	}
}

// waiter checks the chain context of each event: its deadline is the
// pool's timeout after the chain started; even serials wait on Done until
// the deadline, odd serials ask Err, then Done, after the deadline passed
// without waiting on the channel. It records what it saw per serial.
type waiter struct {
	timeout time.Duration
	seen    map[uint32]string
}

func (waiter) Name() string { return "waiter" }

func (w waiter) Enrich(ctx context.Context, ev *audit.Event) error {
	start := time.Now()
	dl, ok := ctx.Deadline()
	var got []string
	if !ok || dl.Before(start.Add(-w.timeout)) || dl.After(start.Add(w.timeout)) {
		got = append(got, "deadline "+dl.String())
	}
	if ctx.Err() != nil {
		got = append(got, "err before the deadline")
	}
	if ev.ID.Serial%2 == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(10 * w.timeout):
			got = append(got, "done not closed")
		}
		if time.Now().Before(dl) {
			got = append(got, "done closed before the deadline")
		}
	} else {
		time.Sleep(time.Until(dl) + time.Millisecond)
		if ctx.Err() != context.DeadlineExceeded {
			got = append(got, "no err after the deadline")
		}
		select {
		case <-ctx.Done():
		default:
			got = append(got, "done open after err")
		}
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		got = append(got, "err "+fmt.Sprint(ctx.Err()))
	}
	w.seen[ev.ID.Serial] = strings.Join(got, "; ")
	return nil
}

// TestPoolDeadline: every event's chain gets its own deadline, whether the
// enricher waits on Done or only reads Err; Done closes at the deadline, not
// before, and Err agrees with it; the reused context starts afresh for the
// next event.
func TestPoolDeadline(t *testing.T) {
	const timeout = 20 * time.Millisecond
	w := waiter{timeout: timeout, seen: map[uint32]string{}}
	p := NewPool([]Enricher{w}, 1, 4, timeout, &metrics.Registry{}, nil, func(*audit.Event, []byte) {})
	const n = 6
	for i := range n {
		p.Submit(&audit.Event{ID: audit.EventID{Serial: uint32(i)}})
	}
	p.Close()
	if len(w.seen) != n {
		t.Fatalf("enricher saw %d events, want %d", len(w.seen), n)
	}
	for s, got := range w.seen {
		if got != "" {
			t.Errorf("event %d: %s", s, got)
		}
	}
}
