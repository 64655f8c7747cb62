package sigma

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// readEvents parses and reassembles an auditd log (string format).
func readEvents(t testing.TB, path string) []*audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []*audit.Event
	ra := audit.NewReassembler(audit.ReassemblerConfig{}, func(ev *audit.Event) { evs = append(evs, ev) })
	var p audit.Parser
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if r, err := p.Parse(sc.Text()); err == nil {
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
// corpus; ns/op is per event (target: 2 µs of CPU on one core, run with
// GOMAXPROCS=1). Summaries are computed once per event beforehand, as
// the enrichment pool does for all its enrichers.
func BenchmarkSigmaCorpus(b *testing.B) {
	s, err := Load(sharedRules(b))
	if err != nil {
		b.Fatal(err)
	}
	evs := readEvents(b, benchCorpus())
	for _, ev := range evs {
		ev.Summary = audit.SummaryOf(ev)
	}
	e, err := New(Config{}, quietLog(), &metrics.Registry{})
	if err != nil {
		b.Fatal(err)
	}
	e.set.Store(s)
	ctx := context.Background()
	// Collect the setup's garbage now: a collection running during the
	// loop would count its CPU time against the rules.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		ev := evs[i%len(evs)]
		i++
		ev.Sigma, ev.Tags, ev.Techniques = ev.Sigma[:0], ev.Tags[:0], ev.Techniques[:0]
		_ = e.Enrich(ctx, ev)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
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
