package perf

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9, 1, 2}, 2},
	} {
		in := append([]float64(nil), c.in...)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("Median modified its input: %v", c.in)
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 may contain spaces and parentheses; utime=250, stime=50 ticks.
	line := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10"
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3*time.Second {
		t.Errorf("got %v, want 3s", got)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 50 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

// TestProcCPU checks ProcCPU against a real process that burns CPU.
func TestProcCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var last time.Duration
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := ProcCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if c < last {
			t.Fatalf("CPU time went backwards: %v then %v", last, c)
		}
		last = c
		if c >= 100*time.Millisecond {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("a busy shell loop showed only %v of CPU", last)
}

func TestProcCPUMissing(t *testing.T) {
	if _, err := ProcCPU(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
}

// ProcMem follows this process's own peak RSS and minor faults as it
// touches 64 MiB of fresh memory, and fails for a pid that does not exist
// and for a status text without VmHWM.
func TestProcMem(t *testing.T) {
	hwm0, flt0, err := ProcMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, 64<<20)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	hwm1, flt1, err := ProcMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(mem)
	if hwm1 < hwm0+32<<10 {
		t.Errorf("peak RSS %d KiB -> %d KiB after touching 64 MiB", hwm0, hwm1)
	}
	if flt1 <= flt0 {
		t.Errorf("minor faults %d -> %d after touching 64 MiB", flt0, flt1)
	}
	if _, _, err := ProcMem(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
	if kb, err := parseStatusHWM("Name:\tx\nVmHWM:\t    5512 kB\nVmRSS:\t 100 kB\n"); err != nil || kb != 5512 {
		t.Errorf("parseStatusHWM = %d, %v; want 5512", kb, err)
	}
	for _, bad := range []string{"", "Name:\tx\n", "VmHWM:\t lots kB\n"} {
		if _, err := parseStatusHWM(bad); err == nil {
			t.Errorf("parseStatusHWM(%q): no error", bad)
		}
	}
}

func TestLoadAvg(t *testing.T) {
	l, err := LoadAvg()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range l {
		if v < 0 || math.IsNaN(v) {
			t.Fatalf("load average %v", l)
		}
	}
}

// TestScrapeHistogram reads a histogram the way the plugin exposes it (the
// project's metrics registry) and checks the quantiles.
func TestScrapeHistogram(t *testing.T) {
	reg := &metrics.Registry{}
	reg.Counter("other_total", "", "x").Add(3)
	h := reg.Histogram("lat_seconds", "", "x", 1e-5, 1e-4, 1e-3, 1e-2)
	for i := 0; i < 90; i++ {
		h.Observe(5e-5) // le 1e-4
	}
	for i := 0; i < 9; i++ {
		h.Observe(5e-3) // le 1e-2
	}
	h.Observe(1) // +Inf
	var buf bytes.Buffer
	if err := reg.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	b, err := ScrapeHistogram(bytes.NewReader(buf.Bytes()), "lat_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 5 || !math.IsInf(b[4].LE, 1) || b[4].Count != 100 || b[1].Count != 90 {
		t.Fatalf("buckets %+v", b)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 1e-4}, {0.9, 1e-4}, {0.95, 1e-2}, {0.99, 1e-2}, {1, math.Inf(1)}} {
		if got := Quantile(b, c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("Quantile of no buckets is not NaN")
	}
	if _, err := ScrapeHistogram(strings.NewReader("other_total 3\n"), "lat_seconds"); err == nil {
		t.Error("no error for a missing histogram")
	}
	if _, err := ScrapeHistogram(strings.NewReader(`lat_seconds_bucket{le="x"} 1`+"\n"), "lat_seconds"); err == nil {
		t.Error("no error for a bad bound")
	}
}

// TestExecload runs the load generator briefly and checks its report.
func TestExecload(t *testing.T) {
	testsupport.SkipShort(t, "execs at a fixed rate for a second: a busy machine misses the rate")
	bin := goBuild(t, t.TempDir(), "execload", "./plugin/perf/execload")
	// A low rate: this checks the generator and its report, not the
	// machine (a CI simulation at load 21 reached 79 of 200 execs/s).
	out, err := exec.Command(bin, "-rate", "20", "-duration", "1s").Output()
	if err != nil {
		t.Fatalf("execload: %v: %s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, `"rate":20,`) || !strings.Contains(s, `"failed":0`) {
		t.Fatalf("report %s", s)
	}
	if out, err := exec.Command(bin, "-rate", "0").CombinedOutput(); err == nil {
		t.Fatalf("rate 0 accepted: %s", out)
	}
	if out, err := exec.Command(bin, "-cmd", "/nonexistent/prog", "-duration", "1s").CombinedOutput(); err == nil {
		t.Fatalf("missing program accepted: %s", out)
	}
}

// TestTinyExit writes the tiny exit program, runs it and checks that it
// exits 0; execload drives it as well (every start must succeed).
func TestTinyExit(t *testing.T) {
	b, err := TinyExit()
	if err != nil {
		t.Skip(err)
	}
	prog := filepath.Join(t.TempDir(), "exit0")
	if err := os.WriteFile(prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(prog, "ignored").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", prog, err, out)
	}
	if testing.Short() {
		return
	}
	bin := goBuild(t, t.TempDir(), "execload", "./plugin/perf/execload")
	out, err := exec.Command(bin, "-rate", "50", "-duration", "500ms", "-cmd", prog).Output()
	if err != nil || !strings.Contains(string(out), `"failed":0`) {
		t.Fatalf("execload -cmd %s: %v: %s", prog, err, out)
	}
}
