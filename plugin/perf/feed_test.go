package perf

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestPacedCost runs the audisp-enrich binary in plugin mode with its
// stdin a pipe that this test writes the way auditd does (one write per
// record) at a fixed rate of audit events, and measures the plugin
// process's CPU share of one core, peak RSS and minor faults over the
// window, as TestLiveCost does but without auditd and the exec load: the
// machine has less else to do, so A/B runs of two builds
// (AUDISP_ENRICH_LIVE_BIN) compare better. The configuration is
// TestLiveCost's (hunting, a 1000-entry block list, the /proc fallback and
// cgroup reads, a file sink).
//
// The events come from AUDISP_ENRICH_CORPUS (default: the bundled
// capture), in a loop; AUDISP_ENRICH_PACED_EVENTS sets events/s (default
// 1000), AUDISP_ENRICH_LIVE_SECONDS the window (default 3) and
// AUDISP_ENRICH_LIVE_COALESCE [input] coalesce (default 20ms). The pids
// of a recorded corpus are mostly gone, so the cgroup reads mostly fail as
// they do for the short-lived processes of the live load.
func TestPacedCost(t *testing.T) {
	testsupport.SkipShort(t, "feeds the plugin binary for seconds")
	path := os.Getenv("AUDISP_ENRICH_CORPUS")
	if path == "" {
		path = filepath.Join("..", "testdata", "capture.log")
	}
	events, err := readEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	rate := 1000
	if s := os.Getenv("AUDISP_ENRICH_PACED_EVENTS"); s != "" {
		if rate, err = strconv.Atoi(s); err != nil || rate <= 0 {
			t.Fatalf("AUDISP_ENRICH_PACED_EVENTS: bad value %q", s)
		}
	}
	seconds := 3
	if s := os.Getenv("AUDISP_ENRICH_LIVE_SECONDS"); s != "" {
		if seconds, err = strconv.Atoi(s); err != nil || seconds <= 0 {
			t.Fatalf("AUDISP_ENRICH_LIVE_SECONDS: bad value %q", s)
		}
	}
	dir := t.TempDir()
	bin := os.Getenv("AUDISP_ENRICH_LIVE_BIN")
	if bin == "" {
		bin = goBuild(t, dir, "audisp-enrich", "./plugin/cmd/audisp-enrich")
	}
	out := filepath.Join(dir, "events.json")
	cfg := pluginConfig(t, dir, dir, out, "")
	cmd := exec.Command(bin, "--config", cfg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	time.Sleep(500 * time.Millisecond) // let it start
	cpu0, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	_, flt0, _ := ProcMem(pid)
	start := time.Now()
	total := seconds * rate
	next := 0
	for i := 0; i < total; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		for _, rec := range events[next] {
			if _, err := stdin.Write(rec); err != nil {
				t.Fatal(err)
			}
		}
		next = (next + 1) % len(events)
	}
	time.Sleep(time.Second) // the plugin's last flush
	window := time.Since(start)
	cpu1, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	hwm, flt1, err := ProcMem(pid)
	if err != nil {
		t.Fatal(err)
	}
	pct := 100 * (cpu1 - cpu0).Seconds() / window.Seconds()
	t.Logf("%d events/s for %d s (%d events of %s): audisp-enrich CPU %.2f %% of one core (%.1f µs per event), peak RSS %d KiB, minor faults %d over the window",
		rate, seconds, total, filepath.Base(path), pct, 1e6*(cpu1-cpu0).Seconds()/float64(total), hwm, flt1-flt0)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("plugin exit: %v", err)
	}
	if n := countLines(t, out); n < total {
		t.Errorf("%d documents for %d events", n, total)
	}
}

// readEvents reads an audit log and groups its records into events:
// consecutive lines with the same msg=audit(...) stamp. Each record keeps
// its newline.
func readEvents(path string) ([][][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs [][][]byte
	var last []byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Bytes()
		i := bytes.Index(l, []byte("msg=audit("))
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(l[i:], ')')
		if j < 0 {
			continue
		}
		stamp := l[i : i+j]
		rec := append(append([]byte(nil), l...), '\n')
		if len(evs) > 0 && bytes.Equal(stamp, last) {
			evs[len(evs)-1] = append(evs[len(evs)-1], rec)
		} else {
			evs = append(evs, [][]byte{rec})
			last = append(last[:0], stamp...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("%s: no audit records", path)
	}
	return evs, nil
}

// countLines counts the lines of a file (0 when it is missing).
func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{'\n'})
}
