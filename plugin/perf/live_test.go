package perf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// liveKey is the audit rule key of the live-cost load; only execs of the
// test's own copy of /bin/true match the rule.
const liveKey = "audisp_enrich_perf"

// LiveRate is what one exec rate cost each process.
type LiveRate struct {
	Rate        float64            `json:"rate"`
	Achieved    float64            `json:"achieved_exec_per_s"`
	Window      float64            `json:"window_s"`
	CPUPercent  map[string]float64 `json:"cpu_percent_of_one_core"`
	PeakRSSKiB  map[string]int64   `json:"peak_rss_kib"` // VmHWM at the window's end (since start)
	MinFlt      map[string]int64   `json:"minor_faults"` // over the window
	Events      map[string]int64   `json:"events_out"`
	LatencyP50  float64            `json:"latency_p50_le_s"`
	LatencyP99  float64            `json:"latency_p99_le_s"`
	LatencyN    float64            `json:"latency_observations"`
	LostBefore  string             `json:"kernel_lost_before"`
	LostAfter   string             `json:"kernel_lost_after"`
	LoadBefore  [3]float64         `json:"load_before"`
	LoadAfter   [3]float64         `json:"load_after"`
	Description string             `json:"description"`
}

// TestLiveCost runs audisp-enrich and laurel side by side as plugins of one
// real auditd, drives an exec load at fixed rates, and measures each
// plugin's (and auditd's) CPU share of one core from /proc/PID/stat
// (utime+stime over the window: laurel's published method), their peak RSS
// (VmHWM) and minor page faults over the window (ProcMem), and the
// plugin's event latency histogram scraped from its metrics listener.
//
// By default it runs one short step (1000 exec/s for 5 s) so the suite
// stays fast; AUDISP_ENRICH_LIVE_RATES (e.g. "100,300,1000") and
// AUDISP_ENRICH_LIVE_SECONDS (e.g. 60) give the published measurement
// (plugin/perf/live-cost.sh). AUDISP_ENRICH_PERF_OUT names a JSON file for
// the results (and NAME.dat with the same figures as columns).
// AUDISP_ENRICH_LIVE_PROC_FALLBACK=false turns the proc table's /proc
// fallback off (it is on in plugin mode by default), to see its share.
// AUDISP_ENRICH_LIVE_COALESCE sets [input] coalesce (default 20ms, the
// config default); AUDISP_ENRICH_LIVE_BIN runs a given audisp-enrich build
// instead of building this tree's (A/B runs). AUDISP_ENRICH_LIVE_FLEET=N
// makes the plugin a fleet host following a verdicts topic that gets N
// verdicts a second (liveFleet), to measure what following it costs.
// The load execs TinyExit's program (AUDISP_ENRICH_LIVE_PROGRAM=true: a
// copy of /bin/true, as before 2026-12-05 afternoon). It asserts that both
// plugins delivered ≥ 95% of the execs.
func TestLiveCost(t *testing.T) {
	testsupport.SkipShort(t, "a real auditd under exec load for minutes; root")
	if err := auditdtest.Available(); err != nil {
		t.Skipf("kernel audit unreachable: %v", err)
	}
	if _, err := exec.LookPath("laurel"); err != nil {
		t.Fatal("laurel not installed (apt-get install laurel): the live cost is measured against it")
	}
	rates := []float64{1000}
	if s := os.Getenv("AUDISP_ENRICH_LIVE_RATES"); s != "" {
		rates = nil
		for _, f := range strings.Split(s, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || r <= 0 {
				t.Fatalf("AUDISP_ENRICH_LIVE_RATES: bad rate %q", f)
			}
			rates = append(rates, r)
		}
	}
	seconds := 5
	if s := os.Getenv("AUDISP_ENRICH_LIVE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("AUDISP_ENRICH_LIVE_SECONDS: bad value %q", s)
		}
		seconds = n
	}

	dir := t.TempDir()
	bin := os.Getenv("AUDISP_ENRICH_LIVE_BIN")
	if bin == "" {
		bin = goBuild(t, dir, "audisp-enrich", "./plugin/cmd/audisp-enrich")
	} else {
		// A given build (A/B runs of two versions): copied so that its
		// process is named audisp-enrich.
		copyFile(t, bin, filepath.Join(dir, "audisp-enrich"))
		bin = filepath.Join(dir, "audisp-enrich")
	}
	load := goBuild(t, dir, "execload", "./plugin/perf/execload")
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	// The program the load execs: the tiny static exit program by default
	// (TinyExit: two cores cannot fork and exec 1000 dynamically linked
	// /bin/true per second on this VM), a copy of /bin/true with
	// AUDISP_ENRICH_LIVE_PROGRAM=true (the earlier rounds' figures).
	prog := filepath.Join(work, "true")
	tiny, terr := TinyExit()
	switch p := os.Getenv("AUDISP_ENRICH_LIVE_PROGRAM"); {
	case p == "true" || terr != nil:
		copyFile(t, "/bin/true", prog)
	case p == "" || p == "tiny":
		writeFile(t, prog, string(tiny))
		if err := os.Chmod(prog, 0o755); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("AUDISP_ENRICH_LIVE_PROGRAM=%q: want tiny or true", p)
	}
	t.Logf("load program: %s (AUDISP_ENRICH_LIVE_PROGRAM=%q; tiny unless \"true\")", prog, os.Getenv("AUDISP_ENRICH_LIVE_PROGRAM"))

	port := testsupport.FreePort(t, "tcp")
	state := filepath.Join(dir, "state")
	laurelDir := filepath.Join(dir, "laurel")
	for _, d := range []string{state, laurelDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	events := filepath.Join(state, "events.json")
	cfg := pluginConfig(t, dir, state, events, fmt.Sprintf("listen = \"127.0.0.1:%d\"\n", port))
	section := liveFleet(t, dir)
	fleetOn := section != ""
	if fleetOn {
		appendFile(t, cfg, section)
	}
	lcfg := filepath.Join(dir, "laurel.toml")
	writeFile(t, lcfg, fmt.Sprintf("directory = %q\n[auditlog]\nfile = \"audit.log\"\nsize = 1000000000\n", laurelDir))
	plug := func(path, args string) string {
		return fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nargs = %s\nformat = string\n", path, args)
	}
	laurelBin, _ := exec.LookPath("laurel")
	a := auditdtest.Start(t, auditdtest.Options{Plugins: map[string]string{
		"audisp-enrich.conf": plug(bin, "--config "+cfg),
		"laurel.conf":        plug(laurelBin, "--config "+lcfg),
	}})
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+work, "-k", liveKey)

	pids := map[string]int{"auditd": a.PID}
	if !testsupport.Until(10*time.Second, func() bool {
		for _, name := range []string{"audisp-enrich", "laurel"} {
			pid := childNamed(a.PID, name)
			if pid == 0 {
				return false
			}
			pids[name] = pid
		}
		return true
	}) {
		t.Fatalf("plugins not started by auditd (found %v)", pids)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	if !testsupport.Until(10*time.Second, func() bool { _, err := scrape(metricsURL); return err == nil }) {
		t.Fatalf("metrics listener %s not up", metricsURL)
	}
	if fleetOn {
		waitFleetCached(t, metricsURL, 1000)
	}

	var results []LiveRate
	for _, rate := range rates {
		r := LiveRate{Rate: rate, CPUPercent: map[string]float64{}, Events: map[string]int64{},
			PeakRSSKiB: map[string]int64{}, MinFlt: map[string]int64{},
			Description: "CPU share = (utime+stime delta from /proc/PID/stat) / window wall time; window = load duration + 2 s drain"}
		evBefore := countKey(t, events)
		laBefore := countKey(t, filepath.Join(laurelDir, "audit.log"))
		h0 := histogram(t, metricsURL)
		cpu0, flt0 := map[string]time.Duration{}, map[string]int64{}
		for name, pid := range pids {
			c, err := ProcCPU(pid)
			if err != nil {
				t.Fatalf("%s pid %d: %v", name, pid, err)
			}
			cpu0[name] = c
			if _, flt0[name], err = ProcMem(pid); err != nil {
				t.Fatalf("%s pid %d: %v", name, pid, err)
			}
		}
		r.LostBefore = statusField("lost")
		r.LoadBefore, _ = LoadAvg()
		start := time.Now()
		// execload exits 1 when over 1% of the starts were missed (a busy
		// machine); the figures then stand for the achieved rate, which is
		// reported.
		out, err := exec.Command(load, "-rate", fmt.Sprint(rate), "-duration", fmt.Sprintf("%ds", seconds), "-cmd", prog, "-workers", "64").Output()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && len(out) > 0 {
			t.Logf("execload at %v/s missed more than 1%% of the starts: %s", rate, bytes.TrimSpace(out))
		} else if err != nil {
			t.Fatalf("execload at %v/s: %v: %s", rate, err, out)
		}
		var lr struct {
			Started  int64   `json:"started"`
			Achieved float64 `json:"achieved_per_s"`
		}
		if err := json.Unmarshal(out, &lr); err != nil {
			t.Fatalf("execload output %q: %v", out, err)
		}
		time.Sleep(2 * time.Second) // let auditd and the plugins drain
		r.Window = time.Since(start).Seconds()
		for name, pid := range pids {
			c, err := ProcCPU(pid)
			if err != nil {
				t.Fatalf("%s pid %d: %v", name, pid, err)
			}
			r.CPUPercent[name] = 100 * (c - cpu0[name]).Seconds() / r.Window
			hwm, flt, err := ProcMem(pid)
			if err != nil {
				t.Fatalf("%s pid %d: %v", name, pid, err)
			}
			r.PeakRSSKiB[name], r.MinFlt[name] = hwm, flt-flt0[name]
		}
		r.LoadAfter, _ = LoadAvg()
		r.LostAfter = statusField("lost")
		r.Achieved = lr.Achieved
		h1 := histogram(t, metricsURL)
		delta := make([]Bucket, len(h1))
		for i := range h1 {
			delta[i] = Bucket{h1[i].LE, h1[i].Count - h0[i].Count}
		}
		r.LatencyP50, r.LatencyP99 = Quantile(delta, 0.5), Quantile(delta, 0.99)
		r.LatencyN = delta[len(delta)-1].Count
		// Laurel flushes its file lazily; wait for both to catch up.
		testsupport.Until(10*time.Second, func() bool {
			return countKey(t, events)-evBefore >= lr.Started && countKey(t, filepath.Join(laurelDir, "audit.log"))-laBefore >= lr.Started
		})
		r.Events["audisp-enrich"] = countKey(t, events) - evBefore
		r.Events["laurel"] = countKey(t, filepath.Join(laurelDir, "audit.log")) - laBefore
		t.Logf("%5.0f exec/s (achieved %.0f, %d execs): CPU %% of one core: audisp-enrich %.2f, laurel %.2f, auditd %.2f; peak RSS KiB audisp-enrich %d laurel %d; minor faults audisp-enrich %d laurel %d; events audisp-enrich %d laurel %d; latency p50 <= %gs p99 <= %gs (%v obs); kernel lost %s -> %s; load %.2f -> %.2f",
			rate, lr.Achieved, lr.Started, r.CPUPercent["audisp-enrich"], r.CPUPercent["laurel"], r.CPUPercent["auditd"],
			r.PeakRSSKiB["audisp-enrich"], r.PeakRSSKiB["laurel"], r.MinFlt["audisp-enrich"], r.MinFlt["laurel"],
			r.Events["audisp-enrich"], r.Events["laurel"], r.LatencyP50, r.LatencyP99, r.LatencyN, r.LostBefore, r.LostAfter, r.LoadBefore[0], r.LoadAfter[0])
		for name, n := range r.Events {
			if float64(n) < 0.95*float64(lr.Started) {
				t.Errorf("%s delivered %d events for %d execs at %v/s (< 95%%)", name, n, lr.Started, rate)
			}
		}
		if r.LatencyN < 0.95*float64(lr.Started) {
			t.Errorf("latency histogram grew by %v observations for %d execs", r.LatencyN, lr.Started)
		}
		results = append(results, r)
	}
	if path := os.Getenv("AUDISP_ENRICH_PERF_OUT"); path != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		// The same figures as columns, for gnuplot (live-cost.sh).
		var dat strings.Builder
		dat.WriteString("# rate audisp-enrich% laurel% auditd% p50_s p99_s audisp-enrich_peak_rss_kib laurel_peak_rss_kib\n")
		for _, r := range results {
			fmt.Fprintf(&dat, "%g %.3f %.3f %.3f %g %g %d %d\n", r.Rate, r.CPUPercent["audisp-enrich"], r.CPUPercent["laurel"], r.CPUPercent["auditd"], r.LatencyP50, r.LatencyP99,
				r.PeakRSSKiB["audisp-enrich"], r.PeakRSSKiB["laurel"])
		}
		if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".dat", []byte(dat.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pluginConfig writes the live-cost configuration of audisp-enrich under
// dir and returns its path: hunting, a 1000-entry block list, [input]
// coalesce from AUDISP_ENRICH_LIVE_COALESCE (default 20ms, the config's
// default), the /proc fallback unless AUDISP_ENRICH_LIVE_PROC_FALLBACK is
// "false", a file sink at events, status reports off; status adds lines to
// [status]. TestLiveCost and TestPacedCost share it.
func pluginConfig(t *testing.T, dir, state, events, status string) string {
	t.Helper()
	block := filepath.Join(dir, "block.txt")
	var bl bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&bl, "%064x live-%d\n", i*7919+1, i)
	}
	writeFile(t, block, bl.String())
	coalesce := "20ms"
	if c := os.Getenv("AUDISP_ENRICH_LIVE_COALESCE"); c != "" {
		coalesce = c
	}
	cfg := filepath.Join(dir, "audisp-enrich.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[status]
interval = "0s"
%s[input]
coalesce = %q
[enrich.proc]
proc_fallback = %v
[enrich.hunt]
enabled = true
[enrich.blocklist]
enabled = true
[[enrich.blocklist.lists]]
name = "live"
path = %q
[[sink]]
type = "file"
[sink.file]
path = %q
max_bytes = 0
`, state, status, coalesce, os.Getenv("AUDISP_ENRICH_LIVE_PROC_FALLBACK") != "false", block, events)+testsupport.SigmaSection(t))
	return cfg
}

// goBuild builds pkg (relative to the module root) into dir/name.
func goBuild(t testing.TB, dir, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	if err := testsupport.GoBuild(out, pkg); err != nil {
		t.Fatal(err)
	}
	return out
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// childNamed returns the pid of parent's child whose comm is name, or 0.
func childNamed(parent int, name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if s[open+1:end] == name && len(f) > 1 && f[1] == strconv.Itoa(parent) {
			return pid
		}
	}
	return 0
}

// countKey counts the lines of path that mention liveKey and EXECVE (one
// per exec event in both tools' JSON Lines output); a missing file counts 0.
func countKey(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	br := bufio.NewReaderSize(f, 1<<20)
	key := []byte(liveKey)
	for {
		line, err := br.ReadBytes('\n')
		if bytes.Contains(line, key) && bytes.Contains(line, []byte("EXECVE")) {
			n++
		}
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func scrape(url string) ([]byte, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func histogram(t *testing.T, url string) []Bucket {
	t.Helper()
	b, err := scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ScrapeHistogram(bytes.NewReader(b), "audisp_enrich_event_latency_seconds")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// statusField returns one field of `auditctl -s` ("" if unavailable).
func statusField(name string) string {
	out, err := exec.Command("auditctl", "-s").Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}
