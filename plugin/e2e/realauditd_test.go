package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// underAuditd is the plugin running under a real local auditd, with a
// scoped exec rule to generate load.
type underAuditd struct {
	a      *auditdtest.Auditd
	cfg    *config
	dir    string
	work   string // the scoped directory; execs of work/prog are audited
	prog   string
	key    string
	syslog *rsyslogd // auditd's own syslog messages, nil when not capturable
}

// startUnderAuditd starts a local auditd (ENRICHED log, q_depth 2000, the
// plugin as an always-on string-format plugin) with extra auditd.conf
// settings, and adds a rule auditing execve in a scratch directory with
// key. Before that, /dev/log is captured when no system logger owns it, so
// that what auditd logs can be read.
func startUnderAuditd(t *testing.T, cfg *config, key string, conf map[string]string) *underAuditd {
	t.Helper()
	if err := auditdtest.Available(); err != nil {
		t.Skipf("kernel audit unreachable, skipping real-auditd test: %v", err)
	}
	u := &underAuditd{cfg: cfg, dir: t.TempDir(), key: key}
	u.syslog = devLog(t)
	cfgPath := cfg.write(t, filepath.Join(u.dir, "config.toml"))
	// auditd starts the plugin with stderr closed: log through a shell
	// that redirects it.
	wrapper := filepath.Join(u.dir, "plugin.sh")
	if err := os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nexec %s --config %s 2>>%s\n", testsupport.PluginBinary(t), cfgPath, filepath.Join(u.dir, "plugin.log"))), 0o750); err != nil {
		t.Fatal(err)
	}
	plug := fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nformat = string\n", wrapper)
	u.a = auditdtest.Start(t, auditdtest.Options{Conf: conf, Plugins: map[string]string{"audisp-enrich.conf": plug}})
	if !testsupport.Until(15*time.Second, func() bool { _, err := scrapeMetrics(cfg.listen); return err == nil }) {
		t.Fatalf("the plugin auditd started does not serve metrics; log:\n%s", u.log())
	}
	u.work = t.TempDir()
	u.prog = filepath.Join(u.work, "prog")
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	u.a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+u.work, "-k", key)
	return u
}

func (u *underAuditd) log() string {
	b, _ := os.ReadFile(filepath.Join(u.dir, "plugin.log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// execs runs the scoped program n times at about rate per second (0: as
// fast as possible).
func (u *underAuditd) execs(t *testing.T, n, rate int) {
	t.Helper()
	start := time.Now()
	for i := 0; i < n; i++ {
		cmd := exec.Command(u.prog)
		cmd.Dir = u.work
		if err := cmd.Run(); err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// localIDs returns the ids of the events auditd logged locally (not the
// node= copies the remote sink sent back) that carry the test's key.
func (u *underAuditd) localIDs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ausearch", "-if", u.a.LogFile, "-k", u.key, "--raw").CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("<no matches>")) {
		t.Fatalf("ausearch -k %s: %v\n%.2000s", u.key, err, out)
	}
	seen := map[string]bool{}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "type=SYSCALL ") {
			continue
		}
		m := stampRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		id := m[1] + "." + m[2] + ":" + m[3]
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// waitLogged waits until auditd's log holds the n exec events, or their
// number stops growing, and returns their ids: what auditd logged is the
// input the plugin is measured against. The kernel may lose a few under
// load (it counts them: auditctl -s "lost"); more than 1% missing fails.
func (u *underAuditd) waitLogged(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	last, since := -1, time.Now()
	testsupport.Until(60*time.Second, func() bool {
		ids = u.localIDs(t)
		if len(ids) != last {
			last, since = len(ids), time.Now()
		}
		return len(ids) >= n || time.Since(since) > 5*time.Second
	})
	if len(ids) < n {
		t.Logf("auditd logged %d of %d exec events (kernel lost counter now %s)", len(ids), n, kernelLost())
	}
	if len(ids)*100 < n*99 {
		t.Fatalf("auditd logged only %d of %d exec events", len(ids), n)
	}
	return ids
}

// kernelLost returns the kernel's audit lost counter (auditctl -s).
func kernelLost() string {
	out, _ := exec.Command("auditctl", "-s").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "lost "); ok {
			return v
		}
	}
	return "?"
}

// checkAuditd asserts that auditd's state report shows no plugin queue
// overflow and, when its syslog is captured, that it never logged "queue
// to plugins is full".
func (u *underAuditd) checkAuditd(t *testing.T) {
	t.Helper()
	st := auditdState(t, u.a.PID)
	line := ""
	for _, l := range strings.Split(st, "\n") {
		if strings.Contains(l, "plugin queue overflow detected") {
			line = strings.TrimSpace(l)
		}
	}
	t.Logf("auditd state report: %q", line)
	if line != "plugin queue overflow detected = no" {
		t.Errorf("auditd state report: %q, want \"plugin queue overflow detected = no\"\n%s", line, st)
	}
	if u.syslog == nil {
		return
	}
	// Only this test's auditd: the capture starts before it, while
	// another test's auditd may still run (see devLog).
	var auditdLines []string
	own := fmt.Sprintf("auditd[%d]|", u.a.PID)
	for _, l := range u.syslog.lines() {
		if strings.HasPrefix(l, own) {
			auditdLines = append(auditdLines, l)
		}
	}
	if len(auditdLines) == 0 {
		t.Errorf("auditd's syslog capture holds no message of auditd %d (not even its start); the check below would prove nothing:\n%s",
			u.a.PID, strings.Join(u.syslog.lines(), "\n"))
	}
	for _, l := range auditdLines {
		if strings.Contains(l, "queue to plugins is full") || strings.Contains(l, "suspending event passing to plugins") {
			t.Errorf("auditd logged: %s", l)
		}
	}
	t.Logf("auditd's syslog (captured on /dev/log): %d messages, none about a full plugin queue", len(auditdLines))
}

// TestRealAuditdAllSinks runs the plugin under a real auditd with Kafka,
// syslog and remote sinks at once. The remote sink's collector is that same
// auditd: tcp_listen_port on loopback, and distribute_network = no (the
// plugins.d default), so what comes back over the network is logged with
// node= but not dispatched to the plugin again. Only one auditd can run, so
// this is how plugin mode under a real auditd reaches a real remote
// collector. Every audited exec must reach all three destinations.
func TestRealAuditdAllSinks(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	dir := t.TempDir()
	br := newBroker(t, "live")
	br.start()
	rs := newRsyslog(t, "")
	rs.start()
	port := testsupport.FreePort(t, "tcp")
	cfg := newConfig(t, dir)
	cfg.add(kafkaSink("kafka", br.addr, "live", "")).
		add(syslogSink("ae-live", rs.addr(), "")).
		add(remoteSink("remote", fmt.Sprintf("127.0.0.1:%d", port), ""))
	u := startUnderAuditd(t, cfg, "e2e_allsinks", map[string]string{
		"tcp_listen_port": fmt.Sprint(port), "tcp_listen_queue": "5", "tcp_max_per_addr": "2", "distribute_network": "no",
	})
	n := pick(300, 2000)
	start := time.Now()
	u.execs(t, n, 0)
	ids := u.waitLogged(t, n)
	t.Logf("%d execs audited in %s", len(ids), time.Since(start).Round(time.Millisecond))
	host, _ := os.Hostname()
	var kafka, syslog, remote map[string]int
	ok := testsupport.Until(60*time.Second, func() bool {
		kafka = parseDocs(t, "kafka", kcat(t, br.addr, "live"), 0).count
		syslog = parseDocs(t, "syslog", rs.docs("ae-live"), 0).count
		remote = remoteStamps(t, u.a.LogFile, host)
		return count(ids, kafka).missing == 0 && count(ids, syslog).missing == 0 && count(ids, remote).missing == 0
	})
	t.Logf("all events in all destinations after %s (ok=%v)", time.Since(start).Round(time.Millisecond), ok)
	u.checkAuditd(t)
	p := &plugin{t: t, listen: cfg.listen}
	if d := p.value("audisp_enrich_input_dropped_records_total"); d != 0 {
		t.Errorf("the plugin dropped %v input records", d)
	}
	u.a.Stop()
	parseDocs(t, "kafka", kcat(t, br.addr, "live"), 1)
	parseDocs(t, "syslog", rs.docs("ae-live"), 1)
	for _, c := range []struct {
		name string
		got  map[string]int
	}{{"kafka (kcat)", kafka}, {"syslog (rsyslogd file)", syslog}, {"remote (ausearch, node=" + host + ")", remote}} {
		tl := count(ids, c.got)
		t.Logf("%s: %s", c.name, tl)
		if tl.missing > 0 {
			t.Errorf("%s: %d of %d audited execs missing, e.g. %v; plugin log:\n%s", c.name, tl.missing, tl.input, tl.missingIDs, u.log())
		}
	}
}

// TestRealAuditdOutage runs the plugin under a real auditd while its only
// sink, Kafka, is down, with an exec load on a scoped rule (short: 2000
// execs as fast as they go; full: 100 execs/s for at least 2 minutes).
// auditd must never report a full plugin queue (its state report after
// SIGCONT, and its syslog when it can be captured), the plugin must drop
// no input, and once the broker is up every audited exec must arrive.
func TestRealAuditdOutage(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	dir := t.TempDir()
	br := newBroker(t, "auditd-outage")
	cfg := newConfig(t, dir)
	cfg.add(kafkaSink("kafka", br.addr, "auditd-outage", ""))
	u := startUnderAuditd(t, cfg, "e2e_outage", nil)
	p := &plugin{t: t, listen: cfg.listen}
	n, rate, down := pick(2000, 12000), pick(0, 100), pick(time.Duration(0), 125*time.Second)
	start := time.Now()
	u.execs(t, n, rate)
	execTime := time.Since(start)
	ids := u.waitLogged(t, n)
	if d := down - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	queued := p.value("audisp_enrich_sink_queued", `sink="kafka"`)
	t.Logf("%d execs in %s (%.0f/s) with the broker down; after %s down the kafka sink holds %.0f documents",
		len(ids), execTime.Round(time.Millisecond), float64(len(ids))/execTime.Seconds(), time.Since(start).Round(time.Second), queued)
	if queued < float64(len(ids)) {
		t.Errorf("kafka sink queued %.0f documents with the broker down, want at least the %d execs", queued, len(ids))
	}
	u.checkAuditd(t)
	st := auditdState(t, u.a.PID)
	for _, l := range strings.Split(st, "\n") {
		if strings.Contains(l, "plugin queue") {
			t.Logf("auditd state: %s", strings.TrimSpace(l))
		}
	}
	br.start()
	upAt := time.Now()
	var got map[string]int
	ok := testsupport.Until(pick(60*time.Second, 3*time.Minute), func() bool {
		if p.value("audisp_enrich_sink_queued", `sink="kafka"`) > 0 {
			return false
		}
		got = parseDocs(t, "kafka", kcat(t, br.addr, "auditd-outage"), 0).count
		return count(ids, got).missing == 0
	})
	t.Logf("backlog delivered %s after the broker came back (ok=%v)", time.Since(upAt).Round(time.Millisecond), ok)
	if d := p.value("audisp_enrich_input_dropped_records_total"); d != 0 {
		t.Errorf("the plugin dropped %v input records", d)
	}
	if d := p.value("audisp_enrich_sink_dropped_total"); d != 0 {
		t.Errorf("the kafka buffer dropped %v documents", d)
	}
	u.checkAuditd(t)
	u.a.Stop()
	got = parseDocs(t, "kafka", kcat(t, br.addr, "auditd-outage"), pick(10, 50)).count
	tl := count(ids, got)
	t.Logf("kafka (kcat): %s", tl)
	if tl.missing > 0 {
		t.Errorf("%d of %d audited execs lost, e.g. %v; plugin log:\n%s", tl.missing, tl.input, tl.missingIDs, u.log())
	}
}
