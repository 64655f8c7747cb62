package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// sinkSet is the three network sinks at once: Kafka (kfake), syslog
// (rsyslogd) and remote auditd (a collector auditd), each with its own
// disk buffer (the default).
type sinkSet struct {
	br     *broker
	rs     *rsyslogd
	coll   *auditdtest.Auditd
	remote string // the collector's host:port
	host   string // node= the remote sink writes (this host's name)
}

// configure adds the three sinks to cfg; topic and the syslog app name
// (prog) tell runs apart in the shared peers.
func (s *sinkSet) configure(cfg *config, topic, prog string) {
	cfg.add(kafkaSink("kafka", s.br.addr, topic, "")).
		add(syslogSink(prog, s.rs.addr(), "")).
		add(remoteSink("remote", s.remote, ""))
}

// check reads every destination back and asserts that every input event
// arrived exactly once in each, with schema-valid JSON documents.
func (s *sinkSet) check(t *testing.T, want []string, topic, prog string) {
	t.Helper()
	kafka := parseDocs(t, "kafka", kcat(t, s.br.addr, topic), 1)
	syslog := parseDocs(t, "syslog", s.rs.docs(prog), 1)
	remote := remoteStamps(t, s.coll.LogFile, s.host)
	for _, c := range []struct {
		name string
		got  map[string]int
		// other runs share the collector: ids of other runs are not
		// unexpected there.
		strict bool
	}{{"kafka (kcat)", kafka.count, true}, {"syslog (rsyslogd file)", syslog.count, true}, {"remote (ausearch on the collector log)", remote, false}} {
		tl := count(want, c.got)
		t.Logf("%s: %s", c.name, tl)
		if tl.missing > 0 {
			t.Errorf("%s: %d of %d events missing, e.g. %v", c.name, tl.missing, tl.input, tl.missingIDs)
		}
		if tl.dups > 0 {
			t.Errorf("%s: %d duplicates in a run without failures", c.name, tl.dups)
		}
		if c.strict && tl.unexpected > 0 {
			t.Errorf("%s: %d events that are not in the input", c.name, tl.unexpected)
		}
	}
	if n := len(kafka.alerts) + len(syslog.alerts); n > 0 {
		t.Errorf("%d loss alerts in a run without failures: %+v %+v", n, kafka.alerts, syslog.alerts)
	}
}

// startSinkSet starts the three peers. The collector is a stock auditd
// with local_events = no and tcp_listen_port on loopback; it holds the
// auditd lock of plugin/auditdtest for the whole test (only one auditd can
// run), which is why plugin mode here is driven by the test rather than by
// a second, local auditd (see TestRealAuditdAllSinks for that).
func startSinkSet(t *testing.T, topics ...string) *sinkSet {
	t.Helper()
	port := testsupport.FreePort(t, "tcp")
	coll := auditdtest.Start(t, auditdtest.Options{Conf: map[string]string{
		"local_events":     "no",
		"tcp_listen_port":  fmt.Sprint(port),
		"tcp_listen_queue": "5",
		"tcp_max_per_addr": "2",
		"freq":             "1",
	}})
	if !testsupport.Until(10*time.Second, func() bool { return testsupport.Listening("tcp", port) }) {
		t.Fatalf("collector auditd is not listening on %d: %s", port, coll.Stderr)
	}
	s := &sinkSet{coll: coll, remote: fmt.Sprintf("127.0.0.1:%d", port), br: newBroker(t, topics...), rs: newRsyslog(t, "")}
	s.br.start()
	s.rs.start()
	var err error
	if s.host, err = os.Hostname(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAllSinks sends the bundled real capture to Kafka, syslog and a
// remote auditd at once, through `audisp-enrich replay --config` and
// through plugin mode (the capture written to the plugin's stdin, as
// auditd would, then EOF), and finds every event in every destination.
func TestAllSinks(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	s := startSinkSet(t, "replay", "plugin")
	base := loadEvents(t, capturePath(t))
	if len(base) != 234 {
		t.Fatalf("capture has %d events, want 234", len(base))
	}

	t.Run("replay", func(t *testing.T) {
		dir := t.TempDir()
		cfg := newConfig(t, dir)
		s.configure(cfg, "replay", "ae-replay")
		out, took := runReplay(t, cfg.write(t, filepath.Join(dir, "config.toml")), capturePath(t))
		t.Logf("replay of %d events took %s", len(base), took.Round(time.Millisecond))
		if strings.Contains(out, "level=ERROR") {
			t.Errorf("replay logged errors:\n%s", out)
		}
		s.check(t, idsOf(base), "replay", "ae-replay")
	})

	t.Run("plugin", func(t *testing.T) {
		// Copy 1 of the capture: the same events under other ids, so the
		// collector's log tells the two runs apart.
		evs := replicate(t, base, 2)[len(base):]
		dir := t.TempDir()
		cfg := newConfig(t, dir)
		s.configure(cfg, "plugin", "ae-plugin")
		p := startPlugin(t, cfg, cfg.write(t, filepath.Join(dir, "config.toml")), filepath.Join(dir, "plugin.log"))
		start := time.Now()
		if err := p.feed(evs); err != nil {
			t.Fatal(err)
		}
		// Keep stdin open until every sink acknowledged everything, as
		// auditd keeps the pipe open; then EOF stops the plugin.
		if _, ok := p.waitMetric(60*time.Second, "audisp_enrich_sink_acked_total", nil, func(v float64) bool { return v >= float64(3*len(evs)) }); !ok {
			t.Errorf("sinks acknowledged %v of %d documents within 60s; log:\n%s", p.value("audisp_enrich_sink_acked_total"), 3*len(evs), p.logTail())
		}
		t.Logf("plugin mode: %d events acknowledged by all three sinks %s after the first write", len(evs), time.Since(start).Round(time.Millisecond))
		exit := p.closeInput(5 * time.Second)
		t.Logf("exit %s after EOF", exit.Round(time.Millisecond))
		s.check(t, idsOf(evs), "plugin", "ae-plugin")
		if !p.state.Success() {
			t.Errorf("plugin exited with %v; log:\n%s", p.state, p.logTail())
		}
	})
}
