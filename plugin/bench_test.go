package plugin

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

func benchLines(b *testing.B) []string {
	path := os.Getenv("AUDISP_ENRICH_CORPUS")
	if path == "" {
		path = filepath.Join("testdata", "capture.log")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	for _, l := range bytes.Split(data, []byte{'\n'}) {
		if len(l) > 0 {
			lines = append(lines, string(l))
		}
	}
	return lines
}

// BenchmarkReplay runs the corpus through the whole pipeline (parse,
// reassemble, enrichment pool, JSON encode, a file sink on /dev/null),
// bare and with every local enricher on (hashes, proc table, ATT&CK,
// a 1000-entry blocklist, hunting rules). One op is the whole corpus
// through a new pipeline; building it is not timed.
func BenchmarkReplay(b *testing.B) {
	lines := benchLines(b)
	dir := b.TempDir()
	list := filepath.Join(dir, "block.txt")
	var lb bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&lb, "%064x bench-%d\n", i*7919+1, i)
	}
	if err := os.WriteFile(list, lb.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, enriched := range []bool{false, true} {
		name := "bare"
		if enriched {
			name = "enriched"
		}
		b.Run(name, func(b *testing.B) {
			cfgText := fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.hashes]
enabled = %v
[enrich.attack]
enabled = %v
[enrich.proc]
enabled = %v
proc_fallback = false
[enrich.hunt]
enabled = %v
[enrich.blocklist]
enabled = %v
reload_interval = "0s"
[[enrich.blocklist.lists]]
name = "bench"
path = %q
[[sink]]
type = "file"
[sink.file]
path = "/dev/null"
max_bytes = 0
`, dir, enriched, enriched, enriched, enriched, enriched, list)
			if enriched {
				cfgText += testsupport.SigmaSection(b)
			}
			cfg, err := conf.Parse("bench.toml", []byte(cfgText))
			if err != nil {
				b.Fatal(err)
			}
			log := slog.New(slog.DiscardHandler)
			b.ReportAllocs()
			// Building the pipeline (compiling the hunting rules, loading
			// the list) is set-up, not throughput: only feeding the corpus
			// and closing (draining the pool and the sink) are timed.
			var cpu time.Duration
			var faults int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p, err := NewPipeline(cfg, log, &metrics.Registry{}, true)
				if err != nil {
					b.Fatal(err)
				}
				cpu0, flt0 := cpuTime(), minorFaults()
				b.StartTimer()
				for _, l := range lines {
					p.Handle(l)
				}
				p.Close(b.Context())
				cpu += cpuTime() - cpu0
				faults += minorFaults() - flt0
			}
			b.StopTimer()
			b.ReportMetric(float64(len(lines)*b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(cpu.Seconds()*1e6/float64(len(lines)*b.N), "cpu-µs/record")
			b.ReportMetric(float64(faults)*1e5/float64(len(lines)*b.N), "minflt/100k-records")
		})
	}
}

// minorFaults is the process's minor page faults so far (getrusage
// ru_minflt): the fresh pages the kernel mapped for it. A count, so it
// holds up on a loaded machine where CPU and wall figures do not.
func minorFaults() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
