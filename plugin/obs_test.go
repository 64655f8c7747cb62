package plugin_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin"
	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// promText is a parsed Prometheus text exposition.
type promText struct {
	series map[string]float64 // canonical series key → value
	types  map[string]string  // family → TYPE
	names  map[string]bool    // every sample name (histogram suffixes included)
}

var (
	promSampleRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	promLabelRe  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"`)
	promMetaRe   = regexp.MustCompile(`^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$`)
)

// parseProm checks text against the Prometheus text format 0.0.4 and
// returns its samples: every non-comment line is `name{labels} value`;
// HELP and TYPE come once per family, before its samples; the samples of a
// family are contiguous; no series repeats; histogram buckets are
// cumulative and end with +Inf equal to _count.
func parseProm(t *testing.T, text string) *promText {
	t.Helper()
	p := &promText{series: map[string]float64{}, types: map[string]string{}, names: map[string]bool{}}
	help := map[string]bool{}
	done := map[string]bool{} // families whose samples are finished
	current := ""
	type hist struct {
		lastBucket float64
		inf, count float64
		sawInf     bool
	}
	hists := map[string]*hist{} // family+labels without le → state
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("exposition does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		ln := i + 1
		if line == "" {
			t.Errorf("line %d: empty line", ln)
			continue
		}
		if strings.HasPrefix(line, "#") {
			m := promMetaRe.FindStringSubmatch(line)
			if m == nil {
				continue // a plain comment
			}
			name := m[2]
			switch m[1] {
			case "HELP":
				if help[name] {
					t.Errorf("line %d: second HELP for %s", ln, name)
				}
				help[name] = true
			case "TYPE":
				if _, dup := p.types[name]; dup {
					t.Errorf("line %d: second TYPE for %s", ln, name)
				}
				switch m[3] {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					t.Errorf("line %d: TYPE %q for %s", ln, m[3], name)
				}
				if done[name] || name == current {
					t.Errorf("line %d: TYPE for %s after its samples", ln, name)
				}
				p.types[name] = m[3]
			}
			continue
		}
		m := promSampleRe.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d: not `name{labels} value`: %q", ln, line)
			continue
		}
		name, rawLabels, rawValue := m[1], m[2], m[3]
		family := name
		if _, ok := p.types[name]; !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if f, ok := strings.CutSuffix(name, suf); ok && p.types[f] == "histogram" {
					family = f
				}
			}
		}
		if _, ok := p.types[family]; !ok {
			t.Errorf("line %d: sample %s has no TYPE before it", ln, name)
		}
		if !help[family] {
			t.Errorf("line %d: sample %s has no HELP before it", ln, name)
		}
		if family != current {
			if done[family] {
				t.Errorf("line %d: samples of %s are not contiguous", ln, family)
			}
			if current != "" {
				done[current] = true
			}
			current = family
		}
		labels := map[string]string{}
		var keys []string
		for rest := rawLabels; rest != ""; {
			lm := promLabelRe.FindStringSubmatch(rest)
			if lm == nil {
				t.Errorf("line %d: bad label syntax at %q", ln, rest)
				break
			}
			if _, dup := labels[lm[1]]; dup {
				t.Errorf("line %d: label %s twice", ln, lm[1])
			}
			labels[lm[1]] = lm[2]
			keys = append(keys, lm[1])
			rest = rest[len(lm[0]):]
			if rest != "" {
				if rest[0] != ',' {
					t.Errorf("line %d: labels not comma-separated at %q", ln, rest)
					break
				}
				rest = rest[1:]
			}
		}
		v, err := strconv.ParseFloat(rawValue, 64)
		if err != nil {
			t.Errorf("line %d: value %q: %v", ln, rawValue, err)
		}
		if p.types[family] == "counter" && v < 0 {
			t.Errorf("line %d: counter %s is negative", ln, name)
		}
		slices.Sort(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+labels[k])
		}
		key := name + "{" + strings.Join(kv, ",") + "}"
		if _, dup := p.series[key]; dup {
			t.Errorf("line %d: duplicate series %s", ln, key)
		}
		p.series[key] = v
		p.names[name] = true
		if p.types[family] == "histogram" {
			var base []string
			for _, k := range keys {
				if k != "le" {
					base = append(base, k+"="+labels[k])
				}
			}
			hk := family + "{" + strings.Join(base, ",") + "}"
			h := hists[hk]
			if h == nil {
				h = &hist{}
				hists[hk] = h
			}
			switch name {
			case family + "_bucket":
				le, ok := labels["le"]
				if !ok {
					t.Errorf("line %d: bucket without le", ln)
				}
				if v < h.lastBucket {
					t.Errorf("line %d: bucket counts of %s decrease", ln, hk)
				}
				h.lastBucket = v
				if le == "+Inf" {
					h.inf, h.sawInf = v, true
				}
			case family + "_count":
				h.count = v
			}
		}
	}
	for hk, h := range hists {
		if !h.sawInf {
			t.Errorf("histogram %s has no +Inf bucket", hk)
		} else if h.inf != h.count {
			t.Errorf("histogram %s: +Inf bucket %g != _count %g", hk, h.inf, h.count)
		}
	}
	return p
}

// get returns the value of name with the given labels ("k", "v", ...), and
// whether the series exists.
func (p *promText) get(name string, kv ...string) (float64, bool) {
	var pairs []string
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+"="+kv[i+1])
	}
	slices.Sort(pairs)
	v, ok := p.series[name+"{"+strings.Join(pairs, ",")+"}"]
	return v, ok
}

// must returns the value of a series that has to exist.
func (p *promText) must(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	v, ok := p.get(name, kv...)
	if !ok {
		t.Errorf("metric %s%v missing", name, kv)
	}
	return v
}

// sum adds every series of name (all label sets).
func (p *promText) sum(name string) float64 {
	var s float64
	for k, v := range p.series {
		if strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// labelValues lists the values label takes in the series of name.
func (p *promText) labelValues(name, label string) []string {
	var out []string
	for k := range p.series {
		rest, ok := strings.CutPrefix(k, name+"{")
		if !ok {
			continue
		}
		for _, pair := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			if v, ok := strings.CutPrefix(pair, label+"="); ok && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// scrapeURL fetches /metrics from a "HOST:PORT" or "unix:PATH" listener
// and checks that it is Prometheus text.
func scrapeURL(listen string) (string, error) {
	resp, err := plugin.GetMetrics(listen)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return "", fmt.Errorf("GET /metrics on %s: Content-Type %q, want text/plain", listen, ct)
	}
	return string(b), nil
}

func scrapeProm(t *testing.T, listen string) *promText {
	t.Helper()
	s, err := scrapeURL(listen)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return parseProm(t, s)
}

// auditLogCounts counts what auditd sent its plugins, from its own log:
// the records, and the distinct events (by audit(SEC.MSEC:SERIAL)). auditd
// does not log EOE records but dispatches them; the kernel ends every
// syscall event (one with a SYSCALL record) with one, so each such event
// adds one record to what the log shows.
func auditLogCounts(t *testing.T, path string) (records, events int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]bool{}
	syscallEvents := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		records++
		i := strings.Index(line, "msg=audit(")
		j := -1
		if i >= 0 {
			j = strings.IndexByte(line[i:], ')')
		}
		if j < 0 {
			t.Fatalf("%s: line without msg=audit(...): %q", path, line)
		}
		id := line[i : i+j]
		ids[id] = true
		if strings.HasPrefix(line, "type=SYSCALL ") || strings.Contains(line, " type=SYSCALL ") {
			syscallEvents[id] = true
		}
	}
	return records + len(syscallEvents), len(ids)
}

// stateDump is STATE_DIR/state.json.
type stateDump struct {
	Time    string `json:"time"`
	PID     int    `json:"pid"`
	Metrics []struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
	} `json:"metrics"`
}

func (d *stateDump) value(name string) (float64, bool) {
	for _, m := range d.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// TestMetricsMatchRealAuditd runs the plugin under a real auditd with a
// Prometheus listener, generates a known number of exec events under a
// scoped rule, and checks that the scraped counters match what auditd sent
// (its own log is the reference): records in, events out, no parse errors,
// one call per event for every enricher, one published document per event
// for the sink. Then `audisp-enrich stats` prints the live figures, both
// through the listener and, with a config without listener, through the
// SIGUSR1 state dump.
func TestMetricsMatchRealAuditd(t *testing.T) {
	testsupport.SkipShort(t, "compares /metrics with a real auditd's own counts (root, kernel audit)")
	if err := auditdtest.Available(); err != nil {
		t.Skipf("kernel audit unreachable: %v", err)
	}
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o750); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.json")
	parseErrs := filepath.Join(dir, "parse-errors.log")
	listen := fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))
	body := func(listen string) string {
		return fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
parse_errors = %q
[status]
interval = "0s"
listen = %q
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %q
`, state, parseErrs, listen, out)
	}
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, body(listen))
	// Same plugin, same state dir, no listener: `stats` must fall back to
	// the SIGUSR1 state dump.
	cfgNoListen := filepath.Join(dir, "nolisten.toml")
	writeFile(t, cfgNoListen, body(""))

	plug := fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nargs = --config %s\nformat = string\n", bin, cfg)
	a := auditdtest.Start(t, auditdtest.Options{Plugins: map[string]string{"audisp-enrich.conf": plug}})
	if !testsupport.Until(10*time.Second, func() bool { _, err := scrapeURL(listen); return err == nil }) {
		t.Fatalf("metrics listener %s never answered", listen)
	}

	work := t.TempDir()
	prog := filepath.Join(work, "prog")
	copyFile(t, "/bin/true", prog, 0o755)
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+work, "-k", "T1059.004_obs")
	const execs = 25
	for range execs {
		if err := exec.Command(prog).Run(); err != nil {
			t.Fatal(err)
		}
	}

	// Wait until the plugin has seen and emitted everything auditd logged.
	var m *promText
	var logRecords, logEvents, outLines int
	settled := testsupport.Until(15*time.Second, func() bool {
		s, err := scrapeURL(listen)
		if err != nil {
			return false
		}
		m = parseProm(t, s)
		logRecords, logEvents = auditLogCounts(t, a.LogFile)
		outLines = countLines(t, out)
		in, _ := m.get("audisp_enrich_input_records_total")
		ev, _ := m.get("audisp_enrich_events_total")
		return int(in) == logRecords && int(ev) == logEvents && outLines == logEvents
	})
	if m == nil {
		t.Fatal("no scrape succeeded")
	}
	if !settled {
		t.Logf("figures did not converge within 15s; comparing the last scrape")
	}
	in := m.must(t, "audisp_enrich_input_records_total")
	evs := m.must(t, "audisp_enrich_events_total")
	if int(in) != logRecords {
		t.Errorf("audisp_enrich_input_records_total = %g, auditd sent %d records (its log plus one EOE per syscall event)", in, logRecords)
	}
	if parsed := m.must(t, "audisp_enrich_records_parsed_total"); parsed != in {
		t.Errorf("records parsed %g != records in %g", parsed, in)
	}
	if int(evs) != logEvents {
		t.Errorf("audisp_enrich_events_total = %g, auditd logged %d distinct events", evs, logEvents)
	}
	if int(evs) != outLines {
		t.Errorf("audisp_enrich_events_total = %g, the file sink holds %d documents", evs, outLines)
	}
	if pe := m.sum("audisp_enrich_parse_errors_total"); pe != 0 {
		t.Errorf("parse errors = %g, want 0", pe)
	}
	if got := m.labelValues("audisp_enrich_parse_errors_total", "reason"); len(got) < 4 {
		t.Errorf("parse error reasons exported: %v, want every reason even at 0", got)
	}
	if ie := m.sum("audisp_enrich_input_errors_total"); ie != 0 {
		t.Errorf("input errors = %g, want 0", ie)
	}
	for _, name := range []string{"audisp_enrich_input_dropped_records_total", "audisp_enrich_reassembler_evicted_total", "audisp_enrich_lost_hint_total"} {
		if v := m.must(t, name); v != 0 {
			t.Errorf("%s = %g, want 0", name, v)
		}
	}
	// Enrichers on by default without extra config: hashes, proc, attack,
	// hunt (blocklist has no lists; VirusTotal is off).
	enrichers := m.labelValues("audisp_enrich_enricher_calls_total", "enricher")
	if !slices.Equal(enrichers, []string{"attack", "hashes", "hunt", "proc"}) {
		t.Errorf("enrichers with metrics: %v, want attack hashes hunt proc", enrichers)
	}
	for _, e := range enrichers {
		if c := m.must(t, "audisp_enrich_enricher_calls_total", "enricher", e); c != evs {
			t.Errorf("enricher %s: %g calls, want one per event (%g)", e, c, evs)
		}
		// The latency of each worker's first call and of one in 32 after
		// it is sampled.
		if c := m.must(t, "audisp_enrich_enricher_seconds_count", "enricher", e); c < 1 || c > evs {
			t.Errorf("enricher %s: latency histogram counted %g, want 1..%g (sampled)", e, c, evs)
		}
		if c := m.must(t, "audisp_enrich_enricher_errors_total", "enricher", e); c != 0 {
			t.Errorf("enricher %s: %g errors", e, c)
		}
	}
	if p := m.must(t, "audisp_enrich_sink_published_total", "sink", "events"); p != evs {
		t.Errorf("sink events published %g, want %g", p, evs)
	}
	if d := m.sum("audisp_enrich_sink_dropped_total"); d != 0 {
		t.Errorf("sink drops = %g, want 0", d)
	}
	// The scoped execs: each one is an event carrying the rule key, and the
	// ATT&CK enricher tagged each with T1059.004.
	tagged := 0
	f, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(f)), "\n") {
		var d doc
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("bad JSON: %v", err)
		}
		if d.Process.Executable == prog {
			tagged++
			if !contains(d.Threat.Technique.Subtechnique.ID, "T1059.004") {
				t.Errorf("exec event %s not tagged T1059.004", d.Event.ID)
			}
		}
	}
	if tagged != execs {
		t.Errorf("%d exec events of %s in the output, want %d", tagged, prog, execs)
	}
	if at := m.must(t, "audisp_enrich_attack_techniques_total"); at < execs {
		t.Errorf("audisp_enrich_attack_techniques_total = %g, want at least %d", at, execs)
	}
	if pe, _ := os.ReadFile(parseErrs); len(pe) > 0 {
		t.Errorf("parse-error log is not empty:\n%s", pe)
	}
	t.Logf("auditd sent %d records (EOE included) in %d events; the plugin read %g and emitted %g", logRecords, logEvents, in, evs)

	// `stats` with the listener prints the live Prometheus text: its
	// counters lie between two scrapes taken around it.
	before := scrapeProm(t, listen)
	st, err := exec.Command(bin, "stats", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("stats: %v\n%s", err, st)
	}
	after := scrapeProm(t, listen)
	sp := parseProm(t, string(st))
	for _, name := range []string{"audisp_enrich_input_records_total", "audisp_enrich_events_total"} {
		v := sp.must(t, name)
		if lo, hi := before.must(t, name), after.must(t, name); v < lo || v > hi || v < float64(execs) {
			t.Errorf("stats: %s = %g, scrapes around it say %g..%g", name, v, lo, hi)
		}
	}

	// `stats` without a listener signals the pid in the state dir and
	// prints the state dump.
	pidb, err := os.ReadFile(filepath.Join(state, "audisp-enrich.pid"))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	before = scrapeProm(t, listen)
	st, err = exec.Command(bin, "stats", "--config", cfgNoListen).CombinedOutput()
	if err != nil {
		t.Fatalf("stats (state dump): %v\n%s", err, st)
	}
	after = scrapeProm(t, listen)
	var dump stateDump
	if err := json.Unmarshal(st, &dump); err != nil {
		t.Fatalf("stats without a listener did not print the state dump: %v\n%s", err, st)
	}
	if dump.PID != pid || pid == 0 {
		t.Errorf("state dump pid %d, pid file %d", dump.PID, pid)
	}
	if _, err := time.Parse(time.RFC3339, dump.Time); err != nil {
		t.Errorf("state dump time %q: %v", dump.Time, err)
	}
	for _, name := range []string{"audisp_enrich_input_records_total", "audisp_enrich_events_total", `audisp_enrich_enricher_calls_total{enricher="attack"}`, `audisp_enrich_sink_published_total{sink="events"}`} {
		v, ok := dump.value(name)
		if !ok {
			t.Errorf("state dump lacks %s", name)
			continue
		}
		pname, labels, _ := strings.Cut(name, "{")
		var kv []string
		if labels != "" {
			k, val, _ := strings.Cut(strings.TrimSuffix(labels, "}"), "=")
			kv = []string{k, strings.Trim(val, `"`)}
		}
		lo, _ := before.get(pname, kv...)
		hi, _ := after.get(pname, kv...)
		if v < lo || v > hi || v == 0 {
			t.Errorf("state dump: %s = %g, scrapes around it say %g..%g", name, v, lo, hi)
		}
	}
	fi, err := os.Stat(filepath.Join(state, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("state.json mode %v is open to others", fi.Mode().Perm())
	}

	// When auditd stops, the plugin exits and removes its pid file, and
	// `stats` says that no plugin runs.
	a.Stop()
	if !testsupport.Until(5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Fatalf("plugin pid %d still runs after auditd stopped", pid)
	}
	if _, err := os.Stat(filepath.Join(state, "audisp-enrich.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after exit: %v", err)
	}
	st, err = exec.Command(bin, "stats", "--config", cfgNoListen).CombinedOutput()
	if err == nil || !strings.Contains(string(st), "no running plugin") {
		t.Errorf("stats with no plugin running: err %v, output %q; want a 'no running plugin' error", err, st)
	}
}

// imaEvent is a single-record IMA measurement event with a sha256 digest.
func imaEvent(sec int64, serial int, file, digest string) string {
	return fmt.Sprintf(`type=INTEGRITY_RULE msg=audit(%d.000:%d): file=%q hash="sha256:%s" ppid=1 pid=%d auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="sh" exe="/usr/bin/dash"`,
		sec, serial, file, digest, 1000+serial)
}

// Digests of the coverage and secrets tests: the first is on the block list.
var testDigests = []string{
	"ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015",
	"275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
	"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
}

// TestMetricsCoverage runs the plugin with every enricher and a network
// sink on (VirusTotal with a key pointing at 127.0.0.1:1, a Kafka sink to
// a closed loopback port with a small memory buffer, a block list) and
// checks that the metrics the observability issue lists exist with their
// labels and plausible values; that the listener also works on a unix
// socket (with `stats`); and that the periodic status line carries the
// main figures.
func TestMetricsCoverage(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o750); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "vt.key")
	if err := os.WriteFile(keyFile, []byte("obs-test-key-not-real\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	block := filepath.Join(dir, "block.txt")
	writeFile(t, block, testDigests[0]+"  evil-sample\n")
	sock := filepath.Join(dir, "metrics.sock")
	out := filepath.Join(dir, "events.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %[1]q
[log]
syslog = false
parse_errors = %[2]q
[status]
interval = "1s"
listen = "unix:%[3]s"
[enrich.proc]
proc_fallback = false
[enrich.blocklist]
enabled = true
[[enrich.blocklist.lists]]
name = "local"
path = %[4]q
kind = "block"
format = "plain"
[enrich.virustotal]
enabled = true
api_key_file = %[5]q
host = "http://127.0.0.1:1"
timeout = "1s"
state_dir = %[1]q
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %[6]q
[[sink]]
name = "kafka"
type = "kafka"
[sink.kafka]
brokers = ["127.0.0.1:%[7]d"]
dial_timeout = "200ms"
[sink.buffer]
type = "memory"
max_events = 50
[sink.delivery]
backoff_min = "50ms"
backoff_max = "200ms"
`, state, filepath.Join(dir, "parse-errors.log"), sock, block, keyFile, out, testsupport.FreePort(t, "tcp")))

	cmd, stdin, stderr := runPlugin(t, bin, cfg)

	lines := captureLines(t)
	now := time.Now().Unix()
	for i, d := range testDigests {
		lines = append(lines, imaEvent(now, 900000+i, fmt.Sprintf("/tmp/obs%d", i), d))
	}
	bad := []string{"not an audit record", "type=SYSCALL no message here"}
	lines = append(lines, bad...)
	if _, err := io.WriteString(stdin, strings.Join(lines, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	listen := "unix:" + sock
	var m *promText
	ok := testsupport.Until(10*time.Second, func() bool {
		s, err := scrapeURL(listen)
		if err != nil {
			return false
		}
		m = parseProm(t, s)
		in, _ := m.get("audisp_enrich_input_records_total")
		q, _ := m.get("audisp_enrich_vt_queue_depth")
		drop := m.sum("audisp_enrich_sink_dropped_total")
		ima, _ := m.get("audisp_enrich_enricher_calls_total", "enricher", "virustotal")
		return int(in) == len(lines) && int(q) == len(testDigests) && drop > 0 && ima > 0
	})
	if m == nil {
		t.Fatalf("no scrape of %s succeeded; stderr:\n%s", listen, stderr.String())
	}
	if !ok {
		t.Logf("figures did not settle within 10s; checking the last scrape")
	}

	// Input, parsing, reassembly.
	if in := m.must(t, "audisp_enrich_input_records_total"); int(in) != len(lines) {
		t.Errorf("records in = %g, sent %d", in, len(lines))
	}
	if pe := m.sum("audisp_enrich_parse_errors_total"); int(pe) != len(bad) {
		t.Errorf("parse errors = %g, sent %d bad lines", pe, len(bad))
	}
	for _, r := range []string{"no_type", "no_msg", "bad_timestamp", "truncated", "other"} {
		m.must(t, "audisp_enrich_parse_errors_total", "reason", r)
	}
	for _, r := range []string{"too_long", "nul_byte", "invalid_utf8", "no_newline", "crlf", "bad_frame"} {
		m.must(t, "audisp_enrich_input_errors_total", "reason", r)
	}
	for _, name := range []string{
		"audisp_enrich_events_total", "audisp_enrich_records_parsed_total", "audisp_enrich_lost_hint_total",
		"audisp_enrich_reassembler_evicted_total", "audisp_enrich_reassembler_timed_out_total",
		"audisp_enrich_reassembler_stray_eoe_total", "audisp_enrich_events_in_flight", "audisp_enrich_event_latency_seconds_count",
		"audisp_enrich_input_bytes_total", "audisp_enrich_input_dropped_records_total",
		"audisp_enrich_input_queue_records", "audisp_enrich_input_queue_high_water_records",
	} {
		m.must(t, name)
	}

	// Every enricher in the chain: calls, errors, slow calls, latency.
	wantEnrichers := []string{"attack", "blocklist", "hashes", "hunt", "proc", "virustotal"}
	got := m.labelValues("audisp_enrich_enricher_calls_total", "enricher")
	for _, e := range wantEnrichers {
		if !slices.Contains(got, e) {
			t.Errorf("no metrics for enricher %s (have %v)", e, got)
			continue
		}
		for _, name := range []string{"audisp_enrich_enricher_calls_total", "audisp_enrich_enricher_errors_total", "audisp_enrich_enricher_slow_total", "audisp_enrich_enricher_seconds_count"} {
			m.must(t, name, "enricher", e)
		}
	}
	// Enricher-specific hits and misses.
	for _, name := range []string{"audisp_enrich_attack_techniques_total", "audisp_enrich_attack_unknown_ids_total", "audisp_enrich_attack_deprecated_ids_total",
		"audisp_enrich_hashes_extracted_total", "audisp_enrich_hashes_invalid_total", "audisp_enrich_hunt_events_total", "audisp_enrich_hunt_hits_total",
		"audisp_enrich_proc_execs_total", "audisp_enrich_proc_evictions_total"} {
		m.must(t, name)
	}
	for _, r := range []string{"table", "proc", "unknown"} {
		m.must(t, "audisp_enrich_proc_parent_lookups_total", "result", r)
	}
	if h := m.must(t, "audisp_enrich_hashes_extracted_total"); int(h) != len(testDigests) {
		t.Errorf("audisp_enrich_hashes_extracted_total = %g, want %d", h, len(testDigests))
	}
	if h := m.must(t, "audisp_enrich_blocklist_hits_total", "list", "local", "kind", "block"); h != 1 {
		t.Errorf("audisp_enrich_blocklist_hits_total = %g, want 1", h)
	}
	if n := m.must(t, "audisp_enrich_blocklist_entries", "list", "local", "kind", "block"); n != 1 {
		t.Errorf("audisp_enrich_blocklist_entries = %g, want 1", n)
	}
	m.must(t, "audisp_enrich_blocklist_loads_total", "list", "local", "kind", "block")
	m.must(t, "audisp_enrich_blocklist_load_errors_total", "list", "local", "kind", "block")

	// VirusTotal: budget left per window, the pending queue (every digest:
	// the host never answers, and a block hit, unlike an allow hit, is
	// looked up too; the capture has no IMA records), cache hits and
	// misses, lookups by outcome.
	if q := m.must(t, "audisp_enrich_vt_queue_depth"); int(q) != len(testDigests) {
		t.Errorf("audisp_enrich_vt_queue_depth = %g, want %d pending hashes", q, len(testDigests))
	}
	for w, max := range map[string]float64{"minute": 4, "day": 500, "month": 15500} {
		if b := m.must(t, "audisp_enrich_vt_budget_remaining", "window", w); b < 0 || b > max {
			t.Errorf("VirusTotal budget %s = %g, want 0..%g", w, b, max)
		}
	}
	for _, o := range []string{"found", "not_found", "quota", "auth", "transient", "error"} {
		m.must(t, "audisp_enrich_vt_lookups_total", "outcome", o)
	}
	m.must(t, "audisp_enrich_vt_cache_total", "result", "hit")
	if miss := m.must(t, "audisp_enrich_vt_cache_total", "result", "miss"); miss < 1 {
		t.Errorf("VirusTotal cache misses = %g, want at least 1", miss)
	}
	m.must(t, "audisp_enrich_vt_verdicts_total")
	m.must(t, "audisp_enrich_vt_store_errors_total")
	if len(m.labelValues("audisp_enrich_vt_skipped_total", "reason")) == 0 {
		t.Errorf("no audisp_enrich_vt_skipped_total series")
	}

	// The Kafka sink: queued, in flight, acked, retried, dropped, oldest
	// age; nothing is acknowledged by a closed port, and what was
	// published is either still queued or dropped.
	for _, name := range []string{"audisp_enrich_sink_queued", "audisp_enrich_sink_in_flight", "audisp_enrich_sink_acked_total",
		"audisp_enrich_sink_retried_total", "audisp_enrich_sink_oldest_age_seconds", "audisp_enrich_sink_connected",
		"audisp_enrich_sink_buffer_bytes", "audisp_enrich_sink_reconnects_total", "audisp_enrich_sink_published_total",
		"audisp_enrich_kafka_connect_errors_total", "audisp_enrich_kafka_messages_delivered_total"} {
		m.must(t, name, "sink", "kafka")
	}
	final := scrapeProm(t, listen)
	pub := final.must(t, "audisp_enrich_sink_published_total", "sink", "kafka")
	queued := final.must(t, "audisp_enrich_sink_queued", "sink", "kafka")
	acked := final.must(t, "audisp_enrich_sink_acked_total", "sink", "kafka")
	var dropped float64
	for _, r := range final.labelValues("audisp_enrich_sink_dropped_total", "reason") {
		v, _ := final.get("audisp_enrich_sink_dropped_total", "sink", "kafka", "reason", r)
		dropped += v
	}
	if acked != 0 {
		t.Errorf("kafka acked %g with no broker", acked)
	}
	if queued != 50 {
		t.Errorf("kafka queued %g, want the buffer's max_events 50", queued)
	}
	if dropped == 0 || pub != queued+dropped {
		t.Errorf("kafka published %g != queued %g + dropped %g", pub, queued, dropped)
	}
	if age := final.must(t, "audisp_enrich_sink_oldest_age_seconds", "sink", "kafka"); age <= 0 {
		t.Errorf("oldest age %g, want > 0 with a queue", age)
	}
	if ce := final.must(t, "audisp_enrich_kafka_connect_errors_total", "sink", "kafka"); ce < 1 {
		t.Errorf("audisp_enrich_kafka_connect_errors_total = %g, want at least 1", ce)
	}

	// `stats` scrapes the unix socket.
	st, err := exec.Command(bin, "stats", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("stats over unix socket: %v\n%s", err, st)
	}
	sp := parseProm(t, string(st))
	if v := sp.must(t, "audisp_enrich_input_records_total"); int(v) != len(lines) {
		t.Errorf("stats: records in %g, want %d", v, len(lines))
	}

	// The periodic status line carries the main figures.
	var status string
	testsupport.Until(3*time.Second, func() bool {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "msg=status") && strings.Contains(l, "report=periodic") && strings.Contains(l, fmt.Sprintf("records=%d ", len(lines))) {
				status = l
				return true
			}
		}
		return false
	})
	if status == "" {
		t.Errorf("no periodic status line with records=%d in stderr:\n%s", len(lines), stderr.String())
	}
	for _, f := range []string{"records=", "events=", "parse_errors=2 ", "rejected=2 ", "flagged=0 ", "lost_hint=", "evicted=", "timed_out=", "in_flight=", "queue=", "queue_high=", "input_dropped=", "uptime="} {
		if status != "" && !strings.Contains(status, f) {
			t.Errorf("status line lacks %s: %s", f, status)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("plugin exit: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "report=final") {
		t.Errorf("no final status line in stderr")
	}
	t.Logf("status line: %s", status)
}

// TestMetricsAfterReload: a SIGHUP reload rebuilds the enrichers and the
// sinks (file, kafka, syslog and remote, all to closed ports); the exposition must still be valid Prometheus text afterwards
// (no series twice, each family contiguous) and the figures must go on
// counting.
func TestMetricsAfterReload(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))
	block := filepath.Join(dir, "block.txt")
	writeFile(t, block, testDigests[0]+"\n")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %[1]q
[log]
syslog = false
[status]
interval = "0s"
listen = %[2]q
[enrich.blocklist]
[[enrich.blocklist.lists]]
name = "local"
path = %[3]q
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %[4]q
[[sink]]
name = "kafka"
type = "kafka"
[sink.kafka]
brokers = ["127.0.0.1:%[5]d"]
dial_timeout = "200ms"
[sink.buffer]
type = "memory"
[[sink]]
name = "syslog"
type = "syslog"
[sink.syslog]
address = "127.0.0.1:%[5]d"
transport = "udp"
[sink.buffer]
type = "memory"
[[sink]]
name = "remote"
type = "remote"
[sink.remote]
address = "127.0.0.1:%[5]d"
[sink.buffer]
type = "memory"
`, dir, listen, block, filepath.Join(dir, "events.json"), testsupport.FreePort(t, "tcp")))
	cmd, stdin, stderr := runPlugin(t, bin, cfg)
	lines := captureLines(t)
	half := len(lines) / 2
	if _, err := io.WriteString(stdin, strings.Join(lines[:half], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	if !testsupport.Until(5*time.Second, func() bool {
		s, err := scrapeURL(listen)
		return err == nil && strings.Contains(s, fmt.Sprintf("audisp_enrich_input_records_total %d\n", half))
	}) {
		t.Fatalf("plugin did not read the first half; stderr:\n%s", stderr.String())
	}
	before := scrapeProm(t, listen)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	if !testsupport.Until(5*time.Second, func() bool { return strings.Contains(stderr.String(), "SIGHUP: config reloaded") }) {
		t.Fatalf("no reload; stderr:\n%s", stderr.String())
	}
	if _, err := io.WriteString(stdin, strings.Join(lines[half:], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	var text string
	testsupport.Until(5*time.Second, func() bool {
		text, _ = scrapeURL(listen)
		// Input is counted when read, events when the pipeline is done
		// with them: wait for both.
		return strings.Contains(text, fmt.Sprintf("audisp_enrich_input_records_total %d\n", len(lines))) &&
			!strings.Contains(text, fmt.Sprintf("audisp_enrich_events_total %g\n", before.must(t, "audisp_enrich_events_total")))
	})
	after := parseProm(t, text) // reports duplicate series and split families
	for _, name := range []string{"audisp_enrich_events_total", "audisp_enrich_input_records_total"} {
		if b, a := before.must(t, name), after.must(t, name); a <= b {
			t.Errorf("%s went from %g to %g across the reload", name, b, a)
		}
	}
	for _, e := range []string{"attack", "hashes", "proc", "hunt", "blocklist"} {
		if b, a := before.must(t, "audisp_enrich_enricher_calls_total", "enricher", e), after.must(t, "audisp_enrich_enricher_calls_total", "enricher", e); a <= b {
			t.Errorf("enricher %s calls went from %g to %g across the reload", e, b, a)
		}
	}
	for _, sink := range []string{"kafka", "syslog", "remote"} {
		after.must(t, "audisp_enrich_sink_queued", "sink", sink)
	}
	after.must(t, "audisp_enrich_blocklist_entries", "list", "local", "kind", "block")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
}

// TestStatsFreshStateDir: on the first start the state directory does not
// exist yet; the plugin still writes its pid file there, so that `stats`
// works without a listener (through the SIGUSR1 state dump), and removes
// it on exit.
func TestStatsFreshStateDir(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	state := filepath.Join(dir, "fresh", "state")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[log]\nsyslog = false\n[status]\ninterval = \"0s\"\n[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n",
		state, filepath.Join(dir, "events.json")))
	cmd, stdin, stderr := runPlugin(t, bin, cfg)
	lines := captureLines(t)
	if _, err := io.WriteString(stdin, strings.Join(lines, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(state, "audisp-enrich.pid")
	if !testsupport.Until(3*time.Second, func() bool { _, err := os.Stat(pidFile); return err == nil }) {
		t.Fatalf("no pid file in a fresh state dir; stderr:\n%s", stderr.String())
	}
	var dump stateDump
	var raw map[string]json.RawMessage
	testsupport.Until(5*time.Second, func() bool {
		st, err := exec.Command(bin, "stats", "--config", cfg).Output()
		if err != nil || json.Unmarshal(st, &dump) != nil || json.Unmarshal(st, &raw) != nil {
			return false
		}
		v, _ := dump.value("audisp_enrich_input_records_total")
		return int(v) == len(lines)
	})
	if v, _ := dump.value("audisp_enrich_input_records_total"); int(v) != len(lines) || dump.PID != cmd.Process.Pid {
		t.Errorf("stats: pid %d records %g, want pid %d records %d", dump.PID, v, cmd.Process.Pid, len(lines))
	}
	// The shutdown counter is there from the start, at 0; with only a
	// file sink (no runner) the dump has no "sinks" field.
	if v, ok := dump.value("audisp_enrich_input_unprocessed_records_total"); !ok || v != 0 {
		t.Errorf("audisp_enrich_input_unprocessed_records_total = %g, %v; want 0 in the dump of a running plugin", v, ok)
	}
	if s, ok := raw["sinks"]; ok {
		t.Errorf("state dump with only a file sink has \"sinks\": %s", s)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after exit: %v", err)
	}
}

// TestMetricsLabelEscaping: a sink name is free text in the config; in the
// exposition it must be a valid, escaped label value (or the config must
// refuse it), never break the Prometheus text.
func TestMetricsLabelEscaping(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[status]
interval = "0s"
listen = %q
[[sink]]
name = 'ev"il\name'
type = "file"
[sink.file]
path = %q
`, dir, listen, filepath.Join(dir, "events.json")))
	if out, err := exec.Command(bin, "check-config", cfg).CombinedOutput(); err != nil {
		t.Skipf("the config refuses the sink name, which is fine: %s", out)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = []string{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var text string
	if !testsupport.Until(5*time.Second, func() bool { text, err = scrapeURL(listen); return err == nil }) {
		t.Fatalf("scrape: %v", err)
	}
	m := parseProm(t, text)
	if _, ok := m.get("audisp_enrich_sink_published_total", "sink", `ev\"il\\name`); !ok {
		t.Errorf(`no audisp_enrich_sink_published_total{sink="ev\"il\\name"}; sink series: %q`, m.labelValues("audisp_enrich_sink_published_total", "sink"))
	}
	stdin.Close()
	_ = cmd.Wait()
}
