package enrich

import (
	"context"
	"errors"
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
			if ev.ID.Serial == 3 && !strings.Contains(strings.Join(ev.Warnings, ";"), "slow: took") {
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
	if snap[`audisp_enrich_enricher_slow_total{enricher="slow"}`] < 1 {
		t.Errorf("slow counter = %v", snap[`audisp_enrich_enricher_slow_total{enricher="slow"}`])
	}
}
