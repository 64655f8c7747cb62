package plugin

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
// a 1000-entry blocklist, hunting rules, package trust over this machine's
// /usr/bin and /usr/sbin). One op is the whole corpus through a new
// pipeline; building it, and waiting for its package index, is not timed.
//
// With AUDISP_ENRICH_BENCH_IMA=1 every exec event gets an INTEGRITY_RULE
// record first (withIMA): the generated corpus is captured without an IMA
// policy, so otherwise the hash enrichers have nothing to judge.
// AUDISP_ENRICH_BENCH_STATE names a directory that keeps the package
// index's hashes between runs (default: a new one per run).
func BenchmarkReplay(b *testing.B) {
	r := newReplayBench(b)
	for _, enriched := range []bool{false, true} {
		name := "bare"
		if enriched {
			name = "enriched"
		}
		b.Run(name, func(b *testing.B) {
			cfg := r.config(b, enriched)
			b.ReportAllocs()
			// Building the pipeline (compiling the hunting rules, loading
			// the list) is set-up, not throughput: only feeding the corpus
			// and closing (draining the pool and the sink) are timed.
			var cpu time.Duration
			var faults int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := r.pipeline(b, cfg)
				cpu0, flt0 := cpuTime(), minorFaults()
				b.StartTimer()
				r.feed(b, p)
				cpu += cpuTime() - cpu0
				faults += minorFaults() - flt0
			}
			b.StopTimer()
			b.ReportMetric(float64(len(r.lines)*b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(cpu.Seconds()*1e6/float64(len(r.lines)*b.N), "cpu-µs/record")
			b.ReportMetric(float64(faults)*1e5/float64(len(r.lines)*b.N), "minflt/100k-records")
		})
	}
}

// BenchmarkReplayRatio measures issue 3's enrichment ratio (`make
// bench-ratio`) with BenchmarkReplay's two pipelines interleaved: each op
// feeds the corpus once through a new bare pipeline and once through a new
// enriched one, the bare one first in even ops and second in odd ones.
// Both thus run in the same seconds of the machine: on a shared VM its
// speed drifts by tens of percent from one second to the next, more than
// the difference measured, and BenchmarkReplay's sub-benchmarks run one
// after the other, seconds apart. Only feeding and closing are timed, as
// in BenchmarkReplay. It reports each side's records/s and CPU µs per
// record over all ops (bare-records/s, enriched-records/s, ...-cpu-µs/record)
// and the ratio of the records/s (enriched ÷ bare). The two sides share one
// garbage collector, so some of one side's garbage may be collected in the
// other's time; forcing a collection before each feed costs both sides far
// more (docs/performance.md, "Enrichment ratio, session 10").
func BenchmarkReplayRatio(b *testing.B) {
	r := newReplayBench(b)
	cfgs := [2]*conf.Config{r.config(b, false), r.config(b, true)}
	var took, cpu [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range 2 {
			side := (i + k) % 2 // 0 bare, 1 enriched
			b.StopTimer()
			p := r.pipeline(b, cfgs[side])
			b.StartTimer()
			t0, cpu0 := time.Now(), cpuTime()
			r.feed(b, p)
			took[side] += time.Since(t0)
			cpu[side] += cpuTime() - cpu0
		}
	}
	b.StopTimer()
	records := float64(len(r.lines) * b.N)
	bare, enriched := records/took[0].Seconds(), records/took[1].Seconds()
	b.ReportMetric(bare, "bare-records/s")
	b.ReportMetric(enriched, "enriched-records/s")
	b.ReportMetric(cpu[0].Seconds()*1e6/records, "bare-cpu-µs/record")
	b.ReportMetric(cpu[1].Seconds()*1e6/records, "enriched-cpu-µs/record")
	b.ReportMetric(enriched/bare, "ratio")
}

// replayBench is the shared set-up of BenchmarkReplay and
// BenchmarkReplayRatio: the corpus and the files the enriched
// configuration names.
type replayBench struct {
	lines               []string
	dir, list, pkgState string
}

func newReplayBench(b *testing.B) *replayBench {
	r := &replayBench{lines: benchLines(b)}
	if os.Getenv("AUDISP_ENRICH_BENCH_IMA") == "1" {
		r.lines = withIMA(b, r.lines)
	}
	r.dir = b.TempDir()
	r.pkgState = os.Getenv("AUDISP_ENRICH_BENCH_STATE")
	if r.pkgState == "" {
		r.pkgState = r.dir
	}
	r.list = filepath.Join(r.dir, "block.txt")
	var lb bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&lb, "%064x bench-%d\n", i*7919+1, i)
	}
	if err := os.WriteFile(r.list, lb.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return r
}

// config returns the bare configuration (every enricher off) or the
// enriched one (every local enricher on, and the Sigma rules of
// AUDISP_ENRICH_SIGMA_RULES).
func (r *replayBench) config(b *testing.B, enriched bool) *conf.Config {
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
[enrich.packages]
enabled = %v
paths = ["/usr/bin", "/usr/sbin"]
rate_mb = 0.0
state_dir = %q
[[sink]]
type = "file"
[sink.file]
path = "/dev/null"
max_bytes = 0
`, r.dir, enriched, enriched, enriched, enriched, enriched, r.list, enriched, r.pkgState)
	if enriched {
		cfgText += testsupport.SigmaSection(b)
	}
	cfg, err := conf.Parse("bench.toml", []byte(cfgText))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// pipeline builds a pipeline for cfg and waits for its package index.
func (r *replayBench) pipeline(b *testing.B, cfg *conf.Config) *Pipeline {
	p, err := NewPipeline(cfg, slog.New(slog.DiscardHandler), &metrics.Registry{}, true)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.enr.waitPackages(b.Context(), slog.New(slog.DiscardHandler), nil); err != nil {
		b.Fatal(err)
	}
	return p
}

// feed passes the corpus through p and closes it (draining the pool and
// the sink).
func (r *replayBench) feed(b *testing.B, p *Pipeline) {
	for _, l := range r.lines {
		p.handle(l, inputPos{})
	}
	p.Close(b.Context())
}

// withIMA returns lines with an INTEGRITY_RULE record added to every exec
// event (before its EXECVE record), as the kernel logs one under IMA's
// audit policy: 7 events in 8 carry the real SHA-256 of an executable a
// package of this machine installed (round robin over common /usr/bin
// programs: "package" on a Debian host), the 8th a hash no package has
// ("unowned").
func withIMA(b *testing.B, lines []string) []string {
	type exe struct{ path, sha string }
	var exes []exe
	for _, n := range []string{"ls", "cat", "env", "true", "sleep", "date", "id", "head", "tail", "sort",
		"wc", "tr", "cut", "grep", "sed", "gzip", "tar", "bash", "dash", "uname"} {
		p, err := filepath.EvalSymlinks("/usr/bin/" + n)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		exes = append(exes, exe{p, fmt.Sprintf("%x", sha256.Sum256(data))})
	}
	if len(exes) == 0 {
		b.Fatal("withIMA: none of the usual programs is in /usr/bin")
	}
	out := make([]string, 0, len(lines)+len(lines)/8)
	n := 0
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "type=EXECVE msg=audit("); ok {
			stamp, _, _ := strings.Cut(rest, ")")
			e := exes[n%len(exes)]
			if n%8 == 7 {
				e = exe{"/tmp/worker", fmt.Sprintf("%x", sha256.Sum256([]byte(stamp)))}
			}
			n++
			out = append(out, fmt.Sprintf(`type=INTEGRITY_RULE msg=audit(%s): file=%q hash="sha256:%s" ppid=1 pid=2 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="worker" exe=%q subj=unconfined res=1`,
				stamp, e.path, e.sha, e.path))
		}
		out = append(out, l)
	}
	return out
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
