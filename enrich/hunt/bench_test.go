package hunt

import (
	"context"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// BenchmarkHunt matches a typical exec event (a user's shell running ls,
// parent known, ENRICHED names) against all built-in rules: no rule
// matches, which is the common case.
func BenchmarkHunt(b *testing.B) {
	e := mustEnricher(b, DefaultConfig())
	event := ev{exe: "/usr/bin/ls", uid: 1000, user: "alice", parent: "/usr/bin/bash",
		paths: []string{"/usr/bin/ls", "/lib64/ld-linux-x86-64.so.2"}}.build()
	benchEnrich(b, e, event)
}

// BenchmarkHuntHit is a web shell event that three rules match (the cost
// of recording hits included).
func BenchmarkHuntHit(b *testing.B) {
	e := mustEnricher(b, DefaultConfig())
	event := ev{exe: "/usr/bin/nc.traditional", uid: 33, user: "www-data", parent: "/usr/sbin/apache2", blocked: true}.build()
	benchEnrich(b, e, event)
}

func benchEnrich(b *testing.B, e *Enricher, event *audit.Event) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		event.Enrichment.Hunt = event.Enrichment.Hunt[:0]
		event.Enrichment.Tags = event.Enrichment.Tags[:0]
		event.Enrichment.Techniques = event.Enrichment.Techniques[:0]
		if err := e.Enrich(ctx, event); err != nil {
			b.Fatal(err)
		}
	}
}
