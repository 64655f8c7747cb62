// Command peerbench runs audisp-enrich and its peers over the same audit
// log, alternating, and reports median wall time, CPU seconds, peak RSS and
// records/s with the ratios between them (docs/performance.md, `make
// bench-peers`).
//
//	peerbench [-corpus FILE] [-runs 5] [-enrich bin/audisp-enrich]
//	          [-auparse PATH] [-laurel laurel] [-work DIR] [-out DIR]
//	          [-procs 1,2]
//
// The tools, each reading the corpus on stdin and writing JSON Lines to
// stdout (/dev/null in timed runs):
//   - laurel --config WORK/laurel.toml (file = "-", its default enrichment);
//   - auparse -format json -i (go-libaudit v2.6.2 cmd/auparse);
//   - audisp-enrich replay --config WORK/audisp-enrich.toml with every local
//     enricher on (hashes, ATT&CK, proc table without /proc fallback,
//     hunting rules, a 1000-entry blocklist); VirusTotal needs the network
//     and stays off;
//   - with -procs, audisp-enrich again once per listed core count, with
//     GOMAXPROCS set in its environment (named "audisp-enrich GOMAXPROCS=N"),
//     to compare one core with two in the same rounds.
//
// Each tool first runs once with its output counted (a check that it read
// the whole corpus, and a warm-up of the page cache); then come -runs
// rounds, each running every tool once, in an order rotated per round so
// no tool always goes first. Wall time is measured around fork and wait;
// CPU (user+sys), peak RSS and minor page faults (ru_minflt: fresh pages
// the kernel had to map, each a fault and, with a second thread running on
// another core, often a TLB shootdown) come from the child's wait4 rusage.
// Faults and RSS are counts, robust under load; wall and CPU are not. The load
// average is recorded before and after each round. Results go to
// OUT/peers.json and OUT/peers.md, and a chart to OUT/peers.png (gnuplot).
//
// Targets (issues 6 and 20), checked in the same run for the default
// "audisp-enrich" (no GOMAXPROCS set): records/s ≥ 5× laurel's, CPU seconds
// ≤ 1/3 of laurel's, peak RSS ≤ 3× laurel's.
// Misses are printed; the exit status is 0 unless a tool fails.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/perf"
)

// tool is one program under test.
type tool struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"` // added to the environment
}

// run is one timed run of one tool.
type run struct {
	Round    int     `json:"round"`
	Wall     float64 `json:"wall_s"`
	User     float64 `json:"user_s"`
	Sys      float64 `json:"sys_s"`
	MaxRSSKB int64   `json:"max_rss_kb"`
	MinFlt   int64   `json:"minor_faults"`
}

// summary is the median of a tool's runs.
type summary struct {
	Tool        string  `json:"tool"`
	Events      int64   `json:"events_out"`
	OutBytes    int64   `json:"output_bytes"`
	Wall        float64 `json:"median_wall_s"`
	CPU         float64 `json:"median_cpu_s"`
	MaxRSSMiB   float64 `json:"median_max_rss_mib"`
	MinFlt      float64 `json:"median_minor_faults"`
	FaultsPer   float64 `json:"minor_faults_per_100k_records"`
	RecordsPerS float64 `json:"records_per_s"`
	RecordsCPU  float64 `json:"records_per_cpu_s"`
	Runs        []run   `json:"runs"`
}

// report is everything one invocation measured.
type report struct {
	Time     string             `json:"time"`
	Corpus   string             `json:"corpus"`
	Records  int64              `json:"records"`
	Bytes    int64              `json:"bytes"`
	CPUs     int                `json:"cpus"`
	CPUModel string             `json:"cpu_model"`
	Kernel   string             `json:"kernel"`
	FloorKB  int64              `json:"harness_peak_rss_kb"`
	Load     [][2][3]float64    `json:"load_before_after_per_round"`
	Tools    []tool             `json:"tools"`
	Results  []summary          `json:"results"`
	Ratios   map[string]float64 `json:"ratios"`
	Targets  []target           `json:"targets"`
}

type target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Want  string  `json:"want"`
	Met   bool    `json:"met"`
}

func main() {
	corpus := flag.String("corpus", "/var/tmp/audisp-enrich-corpus.log", "audit log every tool reads on stdin")
	runs := flag.Int("runs", 5, "timed runs per tool (at least 5 for the published figures)")
	enrichBin := flag.String("enrich", "bin/audisp-enrich", "audisp-enrich binary")
	auparse := flag.String("auparse", "/var/tmp/audisp-enrich-peers/auparse", "go-libaudit v2.6.2 cmd/auparse binary (plugin/perf/peers.sh builds it)")
	laurel := flag.String("laurel", "laurel", "laurel binary (Debian package laurel)")
	work := flag.String("work", "/var/tmp/audisp-enrich-peers", "scratch dir for the tools' configs")
	out := flag.String("out", "build/perf", "output dir for peers.json, peers.md, peers.png")
	chart := flag.Bool("chart", true, "draw OUT/peers.png with gnuplot")
	procs := flag.String("procs", "", "comma-separated core counts: also run audisp-enrich with GOMAXPROCS set to each")
	flag.Parse()
	var cores []int
	for f := range strings.SplitSeq(*procs, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "peerbench: -procs %q: want core counts such as 1,2\n", *procs)
			os.Exit(2)
		}
		cores = append(cores, n)
	}
	if err := main1(*corpus, *runs, *enrichBin, *auparse, *laurel, *work, *out, *chart, cores); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

func main1(corpus string, runs int, enrichBin, auparse, laurel, work, out string, chart bool, cores []int) error {
	if runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	for _, p := range []*string{&enrichBin, &auparse, &laurel} {
		abs, err := exec.LookPath(*p)
		if err != nil {
			return fmt.Errorf("%s: %w (laurel: apt-get install laurel; auparse: plugin/perf/peers.sh; audisp-enrich: make build)", *p, err)
		}
		*p = abs
	}
	if chart {
		if _, err := exec.LookPath("gnuplot"); err != nil {
			return errors.New("gnuplot not found (apt-get install gnuplot-nox), or pass -chart=false")
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	records, size, err := countLines(corpus)
	if err != nil {
		return err
	}
	if records == 0 {
		return fmt.Errorf("%s: empty corpus (make corpus)", corpus)
	}
	enrichCfg, ecsCfg, err := writeConfigs(work)
	if err != nil {
		return err
	}
	tools := []tool{
		{Name: "laurel", Argv: []string{laurel, "--config", filepath.Join(work, "laurel.toml")}},
		{Name: "go-libaudit", Argv: []string{auparse, "-format", "json", "-i", "-in", "-"}},
		{Name: "audisp-enrich", Argv: []string{enrichBin, "replay", "--config", enrichCfg}},
		{Name: "audisp-enrich ecs", Argv: []string{enrichBin, "replay", "--config", ecsCfg}},
	}
	for _, n := range cores {
		tools = append(tools, tool{Name: fmt.Sprintf("audisp-enrich GOMAXPROCS=%d", n), Argv: tools[2].Argv,
			Env: []string{fmt.Sprintf("GOMAXPROCS=%d", n)}})
	}
	rep := report{
		Time: time.Now().UTC().Format(time.RFC3339), Corpus: corpus, Records: records, Bytes: size,
		CPUs: runtime.NumCPU(), CPUModel: cpuModel(), Kernel: kernel(), Tools: tools,
		Ratios: map[string]float64{},
	}
	sums := make([]summary, len(tools))
	for i, t := range tools {
		sums[i].Tool = t.Name
		fmt.Fprintf(os.Stderr, "check %s ... ", t.Name)
		ev, nb, err := countOutput(t, corpus)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		if ev == 0 {
			return fmt.Errorf("%s wrote no output for %s", t.Name, corpus)
		}
		sums[i].Events, sums[i].OutBytes = ev, nb
		fmt.Fprintf(os.Stderr, "%d lines out, %d bytes\n", ev, nb)
	}
	for r := 0; r < runs; r++ {
		before, _ := perf.LoadAvg()
		for k := range tools {
			i := (k + r) % len(tools)
			res, err := timedRun(tools[i], corpus)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", tools[i].Name, r, err)
			}
			res.Round = r
			sums[i].Runs = append(sums[i].Runs, res)
			fmt.Fprintf(os.Stderr, "round %d %-13s wall %.3fs cpu %.3fs rss %d KiB minflt %d\n", r, tools[i].Name, res.Wall, res.User+res.Sys, res.MaxRSSKB, res.MinFlt)
		}
		after, _ := perf.LoadAvg()
		rep.Load = append(rep.Load, [2][3]float64{before, after})
	}
	for i := range sums {
		var wall, cpu, rss, flt []float64
		for _, r := range sums[i].Runs {
			wall = append(wall, r.Wall)
			cpu = append(cpu, r.User+r.Sys)
			rss = append(rss, float64(r.MaxRSSKB)/1024)
			flt = append(flt, float64(r.MinFlt))
		}
		s := &sums[i]
		s.Wall, s.CPU, s.MaxRSSMiB, s.MinFlt = perf.Median(wall), perf.Median(cpu), perf.Median(rss), perf.Median(flt)
		s.FaultsPer = s.MinFlt * 1e5 / float64(records)
		s.RecordsPerS = float64(records) / s.Wall
		s.RecordsCPU = float64(records) / s.CPU
	}
	rep.Results = sums
	rep.FloorKB = selfHWM()
	la, gl, ae, ec := sums[0], sums[1], sums[2], sums[3]
	rep.Ratios["records_per_s_vs_laurel"] = ae.RecordsPerS / la.RecordsPerS
	rep.Ratios["records_per_s_vs_go-libaudit"] = ae.RecordsPerS / gl.RecordsPerS
	rep.Ratios["cpu_vs_laurel"] = ae.CPU / la.CPU
	rep.Ratios["cpu_vs_go-libaudit"] = ae.CPU / gl.CPU
	rep.Ratios["rss_vs_laurel"] = ae.MaxRSSMiB / la.MaxRSSMiB
	rep.Ratios["rss_vs_go-libaudit"] = ae.MaxRSSMiB / gl.MaxRSSMiB
	rep.Ratios["faults_vs_laurel"] = ae.MinFlt / la.MinFlt
	rep.Ratios["faults_vs_go-libaudit"] = ae.MinFlt / gl.MinFlt
	rep.Ratios["ecs_cpu_vs_laurel"] = ec.CPU / la.CPU
	rep.Ratios["ecs_records_per_s_vs_laurel"] = ec.RecordsPerS / la.RecordsPerS
	rep.Ratios["ecs_bytes_vs_full"] = float64(ec.OutBytes) / float64(ae.OutBytes)
	rep.Ratios["ecs_bytes_vs_laurel"] = float64(ec.OutBytes) / float64(la.OutBytes)
	rep.Targets = []target{
		{"records/s vs laurel", rep.Ratios["records_per_s_vs_laurel"], ">= 5", rep.Ratios["records_per_s_vs_laurel"] >= 5},
		{"CPU seconds vs laurel", rep.Ratios["cpu_vs_laurel"], "<= 0.333", rep.Ratios["cpu_vs_laurel"] <= 1.0/3},
		{"peak RSS vs laurel", rep.Ratios["rss_vs_laurel"], "<= 3", rep.Ratios["rss_vs_laurel"] <= 3},
		{"ecs profile: CPU seconds vs laurel", rep.Ratios["ecs_cpu_vs_laurel"], "<= 0.333", rep.Ratios["ecs_cpu_vs_laurel"] <= 1.0/3},
		{"ecs profile: output bytes vs full", rep.Ratios["ecs_bytes_vs_full"], "<= 0.333", rep.Ratios["ecs_bytes_vs_full"] <= 1.0/3},
		{"ecs profile: output bytes vs laurel", rep.Ratios["ecs_bytes_vs_laurel"], "< 1", rep.Ratios["ecs_bytes_vs_laurel"] < 1},
	}
	j, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "peers.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(&rep)
	if err := os.WriteFile(filepath.Join(out, "peers.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	if chart {
		if err := drawChart(&rep, out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "chart: %s\n", filepath.Join(out, "peers.png"))
	}
	return nil
}

// writeConfigs writes laurel's config (JSON to stdout, default enrichment)
// and audisp-enrich's (every local enricher on, a 1000-entry blocklist,
// JSON to stdout), once with the full and once with the ecs profile, into
// dir and returns the paths of the latter two.
func writeConfigs(dir string) (full, ecs string, err error) {
	lc := fmt.Sprintf("directory = %q\n[auditlog]\nfile = \"-\"\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "laurel.toml"), []byte(lc), 0o644); err != nil {
		return "", "", err
	}
	var bl bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&bl, "%064x peerbench-%d\n", i*7919+1, i)
	}
	list := filepath.Join(dir, "blocklist.txt")
	if err := os.WriteFile(list, bl.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	ec := fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[enrich.hashes]
enabled = true
[enrich.attack]
enabled = true
[enrich.proc]
enabled = true
proc_fallback = false
[enrich.hunt]
enabled = true
[enrich.blocklist]
enabled = true
reload_interval = "0s"
[[enrich.blocklist.lists]]
name = "peerbench"
path = %q
[[sink]]
name = "stdout"
type = "stdout"
encoding = "json"
`, dir, list)
	full = filepath.Join(dir, "audisp-enrich.toml")
	if err := os.WriteFile(full, []byte(ec), 0o644); err != nil {
		return "", "", err
	}
	ecs = filepath.Join(dir, "audisp-enrich-ecs.toml")
	return full, ecs, os.WriteFile(ecs, []byte(ec+"profile = \"ecs\"\n"), 0o644)
}

// countLines returns the number of non-empty lines and the size of path.
// It streams the file: the harness must stay small, because a child's
// peak RSS from wait4 includes the harness's own peak (Go starts children
// with vfork, so they share its address space until exec).
func countLines(path string) (int64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (make corpus)", err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	var n, size int64
	prev := byte('\n')
	for {
		k, err := f.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' && prev != '\n' {
				n++
			}
			prev = c
		}
		size += int64(k)
		if err == io.EOF {
			if prev != '\n' {
				n++
			}
			return n, size, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}

// countOutput runs t once with its stdout counted.
func countOutput(t tool, corpus string) (lines, size int64, err error) {
	in, err := os.Open(corpus)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	cmd := exec.Command(t.Argv[0], t.Argv[1:]...)
	cmd.Stdin = in
	if len(t.Env) > 0 {
		cmd.Env = append(os.Environ(), t.Env...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := stdout.Read(buf)
		size += int64(n)
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		if rerr != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, tail(stderr.String()))
	}
	return lines, size, nil
}

// timedRun runs t with stdin from corpus and stdout to /dev/null.
func timedRun(t tool, corpus string) (run, error) {
	in, err := os.Open(corpus)
	if err != nil {
		return run{}, err
	}
	defer in.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return run{}, err
	}
	defer null.Close()
	cmd := exec.Command(t.Argv[0], t.Argv[1:]...)
	cmd.Stdin, cmd.Stdout = in, null
	if len(t.Env) > 0 {
		cmd.Env = append(os.Environ(), t.Env...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return run{}, fmt.Errorf("%v: %s", err, tail(stderr.String()))
	}
	wall := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return run{}, errors.New("no rusage")
	}
	return run{
		Wall:     wall.Seconds(),
		User:     time.Duration(ru.Utime.Nano()).Seconds(),
		Sys:      time.Duration(ru.Stime.Nano()).Seconds(),
		MaxRSSKB: ru.Maxrss, // kilobytes on Linux
		MinFlt:   ru.Minflt,
	}, nil
}

// selfHWM returns this process's peak RSS (VmHWM) in KiB: the floor of
// every child's peak RSS figure.
func selfHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(l[len("VmHWM:"):]), "%d", &kb)
			return kb
		}
	}
	return 0
}

func tail(s string) string {
	if len(s) > 600 {
		return "..." + s[len(s)-600:]
	}
	return s
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.IndexByte(l, ':'); i >= 0 {
				return strings.TrimSpace(l[i+1:])
			}
		}
	}
	return "unknown"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// markdown renders the table, ratios and targets.
func markdown(r *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Corpus: %s, %d records, %.1f MB. %d runs per tool, alternating. %d CPUs (%s), kernel %s.\n",
		r.Corpus, r.Records, float64(r.Bytes)/1e6, len(r.Load), r.CPUs, r.CPUModel, r.Kernel)
	fmt.Fprintf(&b, "Peak RSS floor (the harness's own peak, shared with each child until exec): %d KiB.\n", r.FloorKB)
	if n := len(r.Load); n > 0 {
		fmt.Fprintf(&b, "Load average (1 min) before the first round %.2f, after the last %.2f.\n", r.Load[0][0][0], r.Load[n-1][1][0])
	}
	b.WriteString("\n| tool | median wall s | median CPU s (user+sys) | median peak RSS MiB | median minor faults | faults per 100k records | records/s (wall) | records per CPU-second | JSON lines out |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Results {
		fmt.Fprintf(&b, "| %s | %.3f | %.3f | %.1f | %.0f | %.0f | %.0f | %.0f | %d |\n", s.Tool, s.Wall, s.CPU, s.MaxRSSMiB, s.MinFlt, s.FaultsPer, s.RecordsPerS, s.RecordsCPU, s.Events)
	}
	b.WriteString("\n| audisp-enrich ÷ peer | laurel | go-libaudit |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| records/s | %.2f× | %.2f× |\n", r.Ratios["records_per_s_vs_laurel"], r.Ratios["records_per_s_vs_go-libaudit"])
	fmt.Fprintf(&b, "| CPU seconds | %.2f | %.2f |\n", r.Ratios["cpu_vs_laurel"], r.Ratios["cpu_vs_go-libaudit"])
	fmt.Fprintf(&b, "| peak RSS | %.2f | %.2f |\n", r.Ratios["rss_vs_laurel"], r.Ratios["rss_vs_go-libaudit"])
	fmt.Fprintf(&b, "| minor faults | %.2f | %.2f |\n", r.Ratios["faults_vs_laurel"], r.Ratios["faults_vs_go-libaudit"])
	fmt.Fprintf(&b, "| ecs profile: records/s | %.2f× | |\n", r.Ratios["ecs_records_per_s_vs_laurel"])
	fmt.Fprintf(&b, "| ecs profile: CPU seconds | %.2f | |\n", r.Ratios["ecs_cpu_vs_laurel"])
	fmt.Fprintf(&b, "| ecs profile: output bytes | %.2f | |\n", r.Ratios["ecs_bytes_vs_laurel"])
	b.WriteString("\n| target | measured | want | met |\n|---|---:|---|---|\n")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %.2f | %s | %s |\n", t.Name, t.Value, t.Want, met)
	}
	return b.String()
}

// drawChart writes OUT/peers.dat and OUT/peers.gp and runs gnuplot to make
// OUT/peers.png: three bar panels (records/s, CPU s, peak RSS MiB).
func drawChart(r *report, out string) error {
	var dat strings.Builder
	dat.WriteString("# tool records_per_s cpu_s rss_mib\n")
	for _, s := range r.Results {
		fmt.Fprintf(&dat, "%q %.0f %.3f %.1f\n", s.Tool, s.RecordsPerS, s.CPU, s.MaxRSSMiB)
	}
	datPath := filepath.Join(out, "peers.dat")
	if err := os.WriteFile(datPath, []byte(dat.String()), 0o644); err != nil {
		return err
	}
	gp := fmt.Sprintf(`set terminal png size 1350,450 font ",11"
set output %q
set multiplot layout 1,3 title "Same corpus (%d records), median of %d alternating runs, %d CPUs"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set grid ytics
set yrange [0:*]
unset key
set xtics nomirror font ",10"
set offsets 0, 0, graph 0.12, 0
set title "records/s (higher is better)"
plot %q using 2:xtic(1) lc rgb "#3b75af", '' using 0:2:(sprintf("%%.0f",$2)) with labels offset 0,0.7 notitle
set title "CPU seconds, user+sys (lower is better)"
plot %q using 3:xtic(1) lc rgb "#c44e52", '' using 0:3:(sprintf("%%.2f",$3)) with labels offset 0,0.7 notitle
set title "peak RSS MiB (lower is better)"
plot %q using 4:xtic(1) lc rgb "#55a868", '' using 0:4:(sprintf("%%.1f",$4)) with labels offset 0,0.7 notitle
unset multiplot
`, filepath.Join(out, "peers.png"), r.Records, len(r.Load), r.CPUs, datPath, datPath, datPath)
	gpPath := filepath.Join(out, "peers.gp")
	if err := os.WriteFile(gpPath, []byte(gp), 0o644); err != nil {
		return err
	}
	if o, err := exec.Command("gnuplot", gpPath).CombinedOutput(); err != nil {
		return fmt.Errorf("gnuplot %s: %v: %s", gpPath, err, o)
	}
	return nil
}
