package perf

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin"
)

// BenchmarkLivePaced runs plugin mode (plugin.Live) in this process, fed
// through a pipe at a fixed record rate the way auditd feeds a plugin, and
// reports the process's CPU share of one core (getrusage, user+sys). One
// op is one second of input. It is the in-process twin of TestLiveCost:
// no auditd, so it can run under -cpuprofile to show where live-mode CPU
// goes (make profile-live).
//
// The records come from AUDISP_ENRICH_CORPUS (default: the bundled
// capture), replayed in a loop; AUDISP_ENRICH_PACED_RATE sets records/s
// (default 7000, about 1000 exec events/s). Every local enricher is on,
// with the /proc fallback as in plugin mode; the sink is a file.
func BenchmarkLivePaced(b *testing.B) {
	path := os.Getenv("AUDISP_ENRICH_CORPUS")
	if path == "" {
		path = filepath.Join("..", "testdata", "capture.log")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var lines [][]byte
	for _, l := range bytes.Split(data, []byte{'\n'}) {
		if len(l) > 0 {
			lines = append(lines, append(l, '\n'))
		}
	}
	rate := 7000
	if s := os.Getenv("AUDISP_ENRICH_PACED_RATE"); s != "" {
		if rate, err = strconv.Atoi(s); err != nil || rate <= 0 {
			b.Fatalf("AUDISP_ENRICH_PACED_RATE: bad value %q", s)
		}
	}
	dir := b.TempDir()
	var bl bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&bl, "%064x paced-%d\n", i*7919+1, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "block.txt"), bl.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := conf.Parse("paced.toml", []byte(fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[status]
interval = "0s"
[enrich.hunt]
enabled = true
[enrich.blocklist]
enabled = true
[[enrich.blocklist.lists]]
name = "paced"
path = %q
[[sink]]
type = "file"
[sink.file]
path = %q
max_bytes = 0
`, dir, filepath.Join(dir, "block.txt"), filepath.Join(dir, "events.json"))))
	if err != nil {
		b.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- plugin.Live(cfg, "", slog.New(slog.DiscardHandler), pr) }()

	// Write every millisecond what is due by then, so the plugin sees
	// small writes as it does from auditd.
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	start := time.Now()
	next, sent := 0, 0
	var buf []byte
	for sec := 0; sec < b.N; sec++ {
		for ms := 1; ms <= 1000; ms++ {
			due := (sec*1000 + ms) * rate / 1000
			buf = buf[:0]
			for ; sent < due; sent++ {
				buf = append(buf, lines[next]...)
				next = (next + 1) % len(lines)
			}
			if _, err := pw.Write(buf); err != nil {
				b.Fatal(err)
			}
			if d := time.Until(start.Add(time.Duration(sec*1000+ms) * time.Millisecond)); d > 0 {
				time.Sleep(d)
			}
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	pr.Close()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	if sent == 0 {
		b.Fatal("nothing sent")
	}
	b.ReportMetric(100*cpu.Seconds()/el.Seconds(), "%core")
	b.ReportMetric(float64(sent)/el.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(sent), "cpu-µs/record")
}
