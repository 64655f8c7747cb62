package virustotal

import (
	"context"
	"testing"
)

// BenchmarkEnrichCacheHit is the hot path for a known hash: LRU hit.
func BenchmarkEnrichCacheHit(b *testing.B) {
	h := newHarness(b, nil)
	x := sha(1)
	h.fake.Set(x, fileReply(x, 3))
	h.e.Enrich(context.Background(), ev(1, fh256(x)))
	h.verdict()
	e := ev(2, fh256(x))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.VirusTotal = nil
		h.e.Enrich(ctx, e)
	}
	if e.VirusTotal.Status != StatusHit {
		b.Fatalf("%+v", e.VirusTotal)
	}
}

// BenchmarkEnrichPending is the hot path for a hash already queued: the
// event joins the pending item (a vt.db read, no write).
func BenchmarkEnrichPending(b *testing.B) {
	h := newHarness(b, nil)
	h.cfg.PerMinute = 1
	h.e.Close()
	h.start()
	h.e.Enrich(context.Background(), ev(1, fh256(sha(1)))) // uses the minute
	h.verdict()
	x := sha(2)
	e := ev(2, fh256(x))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.VirusTotal = nil
		h.e.Enrich(ctx, e)
	}
	if e.VirusTotal.Status != StatusPending {
		b.Fatalf("%+v", e.VirusTotal)
	}
}

// BenchmarkEnrichDiskHit is an LRU miss answered from vt.db (cache size 1,
// two hashes alternating).
func BenchmarkEnrichDiskHit(b *testing.B) {
	h := newHarness(b, nil)
	h.cfg.CacheSize = 1
	h.e.Close()
	h.start()
	evs := []*struct{ x string }{{sha(1)}, {sha(2)}}
	for i, s := range evs {
		h.fake.Set(s.x, fileReply(s.x, 0))
		h.e.Enrich(context.Background(), ev(uint32(i), fh256(s.x)))
		h.verdict()
	}
	a, c := ev(10, fh256(sha(1))), ev(11, fh256(sha(2)))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.e.Enrich(ctx, a)
		h.e.Enrich(ctx, c)
	}
	if a.VirusTotal.Status != StatusHit || c.VirusTotal.Status != StatusHit {
		b.Fatalf("%+v %+v", a.VirusTotal, c.VirusTotal)
	}
}
