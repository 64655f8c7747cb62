package hunt

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/proc"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/recordtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
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

// BenchmarkCorpusChain runs the local enrichers that add to the replay
// corpus's events, as the pipeline chains them (the process table
// without its /proc fallback, ATT&CK, the built-in hunting rules), over
// the corpus ($AUDISP_ENRICH_CORPUS, else plugin/testdata/capture.log),
// and reports each one's CPU per event: the events are reassembled in
// batches of 64 (the pool's queue) and each enricher runs over a batch in
// turn, timed by the thread's CPU clock, so the figures leave out parsing
// and summarising. Run with GOMAXPROCS=1.
func BenchmarkCorpusChain(b *testing.B) {
	corpus := os.Getenv("AUDISP_ENRICH_CORPUS")
	if corpus == "" {
		corpus = filepath.Join("..", "..", "plugin", "testdata", "capture.log")
	}
	data, err := os.ReadFile(corpus)
	if err != nil {
		b.Fatal(err)
	}
	feed := recordtest.NewFeeder(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"))
	pcfg := proc.DefaultConfig()
	pcfg.ProcFallback = false
	tb, err := proc.New(pcfg, &metrics.Registry{})
	if err != nil {
		b.Fatal(err)
	}
	att, err := attack.New(attack.DefaultConfig(), &metrics.Registry{})
	if err != nil {
		b.Fatal(err)
	}
	chain := []enrich.Enricher{tb, att, mustEnricher(b, DefaultConfig())}
	const batch = 64
	var sums [batch]audit.Summary
	spent := make([]int64, len(chain))
	ctx := context.Background()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for done := 0; done < b.N; {
		feed.Fill(batch)
		evs := feed.Events[:min(batch, b.N-done)]
		for i, ev := range evs {
			audit.Summarize(ev, &sums[i])
			ev.Summary = &sums[i]
		}
		for i, e := range chain {
			t0 := threadCPU()
			for _, ev := range evs {
				_ = e.Enrich(ctx, ev)
			}
			spent[i] += threadCPU() - t0
		}
		for _, ev := range evs {
			hits += len(ev.Hunt)
			ev.Summary = nil
			ev.Release()
		}
		done += len(evs)
		feed.Events = append(feed.Events[:0], feed.Events[len(evs):]...)
	}
	if hits == 0 && b.N >= batch {
		b.Fatal("no hunting rule matched: the corpus's execs from /tmp should")
	}
	for i, e := range chain {
		b.ReportMetric(float64(spent[i])/float64(b.N), e.Name()+"-cpu-ns/event")
	}
}

// threadCPU is the calling thread's CPU time in nanoseconds.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
