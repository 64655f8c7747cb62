package enrich

import (
	"context"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// nop is an enricher that does nothing.
type nop struct{}

func (nop) Name() string                               { return "nop" }
func (nop) Enrich(context.Context, *audit.Event) error { return nil }

// BenchmarkPoolRun is what the pool itself costs per audit event around a
// chain of seven enrichers (the pipeline's local chain) that do nothing:
// the chain's clock readings and deadline, the sampled per-enricher
// timing and the tallies (run, as a worker calls it).
func BenchmarkPoolRun(b *testing.B) {
	chain := make([]Enricher, 7)
	for i := range chain {
		chain[i] = nop{}
	}
	p := NewPool(chain, 1, 1, time.Second, &metrics.Registry{}, nil, func(*audit.Event, []byte) {})
	defer p.Close()
	tallies := make([]tally, len(chain))
	for i := range tallies {
		tallies[i].latency = p.stats[i].latency.NewTally()
	}
	var ctx chainCtx
	ev := &audit.Event{}
	b.ReportAllocs()
	n, timeNext := 0, false
	for b.Loop() {
		n++
		timeNext = p.run(&ctx, ev, tallies, timeNext || sampled(n))
		if tallies[0].calls >= flushEvery {
			p.flush(tallies)
		}
	}
}
