package encode

import (
	"bytes"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// corpusLines loads the benchmark corpus: AUDISP_ENRICH_CORPUS (made by
// `make corpus` from a real auditd) or the bundled capture.
func corpusLines(b *testing.B) []string {
	path := os.Getenv("AUDISP_ENRICH_CORPUS")
	if path == "" {
		path = filepath.Join("..", "..", "plugin", "testdata", "capture.log")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("corpus: %v", err)
	}
	var lines []string
	for _, l := range bytes.Split(data, []byte{'\n'}) {
		if len(l) > 0 {
			lines = append(lines, string(l))
		}
	}
	return lines
}

// cpuTime is the process's user and system CPU time so far (getrusage):
// unlike wall time, it does not count the time other processes of a
// loaded machine held the core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// minorFaults is the process's minor page faults so far (getrusage
// ru_minflt): fresh pages the kernel mapped. A count, robust on a loaded
// machine.
func minorFaults() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

// BenchmarkPipeline measures parse + reassemble + JSON encode over the
// corpus, releasing each event once encoded. One op is the whole corpus; records/s, allocs/record and minor
// page faults per 100k records are reported. Run with GOMAXPROCS=1 (make
// bench) for the one-core figure.
func BenchmarkPipeline(b *testing.B) {
	lines := corpusLines(b)
	var size int64
	for _, l := range lines {
		size += int64(len(l) + 1)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	var enc Full
	out := make([]byte, 0, 1<<20)
	events := 0
	flt0 := minorFaults()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var p audit.Parser
		r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) {
			out = enc.Append(out[:0], ev)
			ev.Release() // as the output stage does once the sinks have their copies
			events++
		})
		for _, l := range lines {
			rec, err := p.Parse(l)
			if err != nil {
				continue
			}
			r.Push(rec)
		}
		r.Flush()
	}
	b.StopTimer()
	faults := minorFaults() - flt0
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(len(lines)*b.N)/sec, "records/s")
	b.ReportMetric(float64(faults)*1e5/float64(len(lines)*b.N), "minflt/100k-records")
	b.ReportMetric(float64(events)/sec, "events/s")
}

// BenchmarkFull measures the full profile's encoder alone, JSON and
// msgpack, over the events of the corpus's first 5,000 lines, parsed,
// reassembled and summarized before the timer as the enrichment pool hands
// them over (about a megabyte of records: they stay in the caches, as in
// the pipeline, where an event is encoded soon after its lines were
// parsed). One op encodes every event once. Reported: ns/event, the
// output's MB/s, and cpu-ns/event (process CPU time, the figure to compare
// on a loaded machine).
func BenchmarkFull(b *testing.B) {
	lines := corpusLines(b)
	lines = lines[:min(len(lines), 5000)]
	var evs []*audit.Event
	var p audit.Parser
	r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) { evs = append(evs, ev) })
	for _, l := range lines {
		if rec, err := p.Parse(l); err == nil {
			r.Push(rec)
		}
	}
	r.Flush()
	sums := make([]audit.Summary, len(evs))
	for i, ev := range evs {
		audit.Summarize(ev, &sums[i])
		ev.Summary = &sums[i]
	}
	for _, f := range []struct {
		name   string
		format Format
	}{{"json", JSON}, {"msgpack", Msgpack}} {
		b.Run(f.name, func(b *testing.B) {
			enc := Full{Format: f.format}
			var out []byte
			var size int64
			for _, ev := range evs {
				out = enc.Append(out[:0], ev)
				size += int64(len(out))
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				for _, ev := range evs {
					out = enc.Append(out[:0], ev)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(evs)), "cpu-ns/event")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
		})
	}
}
