package sigma

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/recordtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// readEvents parses and reassembles an auditd log (string format).
func readEvents(t testing.TB, path string) []*audit.Event {
	t.Helper()
	var evs []*audit.Event
	ra := audit.NewReassembler(audit.ReassemblerConfig{}, func(ev *audit.Event) { evs = append(evs, ev) })
	var p audit.Parser
	for _, line := range readLines(t, path) {
		if r, err := p.Parse(line); err == nil {
			ra.Push(r)
		}
	}
	ra.Flush()
	return evs
}

// benchCorpus is $AUDISP_ENRICH_CORPUS (make corpus) or the small capture
// in plugin/testdata.
func benchCorpus() string {
	if c := os.Getenv("AUDISP_ENRICH_CORPUS"); c != "" {
		return c
	}
	return filepath.Join("..", "..", "plugin", "testdata", "capture.log")
}

// BenchmarkSigmaCorpus: all SigmaHQ Linux rules on every event of the
// corpus ($AUDISP_ENRICH_CORPUS, else plugin/testdata/capture.log); ns/op
// and cpu-ns/event are per event (target: 2 µs of CPU on one core, run
// with GOMAXPROCS=1). Two variants, which differ only in where the events
// are in memory when the rules run:
//
//   - cold: the whole corpus is parsed and reassembled first (about
//     280 MB for 28,306 events), then the rules run over it again and
//     again, so every event is read from main memory. This is the
//     engine's worst case, not the pipeline's.
//   - pipeline: as the plugin runs them. The corpus is parsed and
//     reassembled (stream time, as replay does) in batches of
//     pipelineInFlight events with the timer and the CPU clock stopped,
//     each event summarised as the pool's worker does, then the rules
//     run over the batch, then the events are released as the output
//     stage releases them, so the parser reuses their memory for the
//     next batch. It is where the pipeline's events are, but a best case
//     for the rules' own tables, which stay in cache over the batch
//     (in the plugin the other enrichers and the encoder run between two
//     events), and for their lists (the events carry none from earlier
//     enrichers, so the hits' lists always come from enrich.ListMemo).
//     The plugin's own figure is the Sigma enricher's share of a CPU
//     profile of plugin's BenchmarkReplay/enriched (docs/sigma.md).
//
// cpu-ns/event is process CPU time (getrusage, user plus system) over the
// timed part only: for pipeline, the sum of a delta taken around each
// batch's rules, so parsing, summarising and releasing are left out; at
// GOMAXPROCS=1 the only Go code running in that window is the rules. The
// window also holds half of each of its two getrusage calls, 1.4–2.5 µs
// per batch (about 25 ns per event) on the shared VM, which is measured
// on empty windows before the loop and taken off (clock-ns/batch reports
// it); readings are in microseconds, which averages out over thousands
// of batches.
//
// Garbage collection is kept out of both: cold collects its setup's
// garbage before timing; pipeline turns the collector off and collects
// with the clock stopped every gcBatches batches, since the parser's
// garbage would otherwise be collected at random moments, some of them
// timed. That charges the rules what the pipeline's collector would,
// since the collector's work follows allocation and the rules allocate
// next to nothing (B/op and allocs/op: 0 on the corpus, since the lists
// of a set of hits are shared between events through enrich.ListMemo,
// not copied). hits/event (rule matches per event) shows that both
// variants evaluate alike.
func BenchmarkSigmaCorpus(b *testing.B) {
	s, err := Load(sharedRules(b))
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{}, quietLog(), &metrics.Registry{})
	if err != nil {
		b.Fatal(err)
	}
	e.set.Store(s)
	b.Run("cold", func(b *testing.B) { benchCold(b, e) })
	b.Run("pipeline", func(b *testing.B) { benchPipeline(b, e) })
}

// pipelineInFlight is the events between the reassembler and the Sigma
// enricher when the pipeline is busy: the enrichment pool holds at most
// [enrich] queue events (conf.Defaults: 64; Submit blocks beyond), so an
// event reaches its worker after at most that many newer events were
// built. (This package cannot import conf, which imports it.) The
// reassembler emits a kernel event on its EOE record, which the corpus
// carries, so it adds no delay there.
const pipelineInFlight = 64

// gcBatches is how many pipeline batches run between two untimed
// collections (about 0.8 MB of parser garbage: the parser reuses the
// released events' memory, so it allocates about 120 bytes per event).
const gcBatches = 100

func benchCold(b *testing.B, e *Enricher) {
	evs := readEvents(b, benchCorpus())
	for _, ev := range evs {
		ev.Summary = audit.SummaryOf(ev)
	}
	ctx := context.Background()
	// Collect the setup's garbage now: a collection running during the
	// loop would count its CPU time against the rules.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	i, hits := 0, 0
	for b.Loop() {
		ev := evs[i%len(evs)]
		i++
		// As the reassembler made it: no lists yet. (Keeping their
		// arrays would append into lists the memo shares between
		// events, and skip the memo.)
		ev.Sigma, ev.Tags, ev.Techniques = nil, nil, nil
		_ = e.Enrich(ctx, ev)
		hits += len(ev.Sigma)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(hits)/float64(b.N), "hits/event")
	checkHits(b, hits)
}

// checkHits fails the benchmark when no rule matched in a run of a batch
// or more (the first, one-event run may meet an event no rule matches):
// the corpus's execs from a temporary directory match two SigmaHQ rules
// each and the capture's events 1.8 on average (docs/sigma.md), so rules
// that match nothing would be measured as a faster engine.
func checkHits(b *testing.B, hits int) {
	if hits == 0 && b.N >= pipelineInFlight {
		b.Fatalf("no rule matched any of %d events: the rules or the events are broken, the figure means nothing", b.N)
	}
}

func benchPipeline(b *testing.B, e *Enricher) {
	feed := recordtest.NewFeeder(readLines(b, benchCorpus()))
	var sums [2 * pipelineInFlight]audit.Summary
	ctx := context.Background()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	clock := windowCost()
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	var cpu int64
	hits := 0
	for done, batches := 0, 0; done < b.N; batches++ {
		if batches%gcBatches == 0 {
			runtime.GC()
		}
		feed.Fill(pipelineInFlight)
		batch := feed.Events[:min(len(feed.Events), b.N-done, len(sums))]
		for i, ev := range batch {
			audit.Summarize(ev, &sums[i])
			ev.Summary = &sums[i]
		}
		b.StartTimer()
		cpu0 := cpuTime()
		for _, ev := range batch {
			_ = e.Enrich(ctx, ev)
		}
		cpu += cpuTime() - cpu0 - clock
		b.StopTimer()
		for _, ev := range batch {
			hits += len(ev.Sigma)
			ev.Summary = nil
			ev.Release()
		}
		done += len(batch)
		feed.Events = append(feed.Events[:0], feed.Events[len(batch):]...)
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(hits)/float64(b.N), "hits/event")
	b.ReportMetric(float64(clock), "clock-ns/batch")
	checkHits(b, hits)
}

// windowCost is the CPU time that an empty window between two cpuTime
// calls reads, on average over many.
func windowCost() int64 {
	const n = 2000
	var d int64
	for range n {
		c0 := cpuTime()
		d += cpuTime() - c0
	}
	return d / n
}

// readLines reads an auditd log (string format) into its lines.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// cpuTime is the CPU time the process used so far, in nanoseconds: on a
// busy machine it measures the work better than the wall clock.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSigmaLoad: loading all SigmaHQ Linux rules (target 200 ms);
// ns/op is wall time, cpu-ns/load the CPU time of one load.
func BenchmarkSigmaLoad(b *testing.B) {
	dirs := sharedRules(b)
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := Load(dirs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/load")
}
