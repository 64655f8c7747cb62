package output

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/file"
)

// udpPeer counts the datagrams a real UDP socket receives.
func udpPeer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return c.LocalAddr().String(), &n
}

func stageConfig(t *testing.T, dir, udp, appName string, extra bool) *conf.Config {
	t.Helper()
	text := fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "file"
type = "file"
[sink.file]
path = %q
[[sink]]
name = "udp"
type = "syslog"
[sink.buffer]
type = "memory"
[sink.syslog]
transport = "udp"
address = %q
app_name = %q
`, dir, filepath.Join(dir, "events.json"), udp, appName)
	if extra {
		text += fmt.Sprintf("[[sink]]\nname = \"extra\"\ntype = \"syslog\"\n[sink.buffer]\ntype = \"memory\"\n[sink.syslog]\ntransport = \"udp\"\naddress = %q\n", udp)
	}
	cfg, err := conf.Parse("stage.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func publish(s *Stage, from, to int) {
	var buf []byte
	for i := from; i < to; i++ {
		ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1700000000, Serial: uint32(i)}}
		buf = s.Encode(0, ev, buf[:0])
		s.Deliver(ev, buf)
	}
	s.Flush()
}

// TestReloadKeepsHandsOverAndRemoves: Prepare keeps an unchanged sink as it
// runs, gives a changed network sink's buffer to its new Sink (every
// document reaches the peer, counters continue), and Start stops a
// removed sink and removes its series. A Prepare that fails leaves the
// running stage as it was.
func TestReloadKeepsHandsOverAndRemoves(t *testing.T) {
	dir := t.TempDir()
	udp, got := udpPeer(t)
	reg := &metrics.Registry{}
	opts := Options{Metrics: reg, Logger: slog.New(slog.DiscardHandler)}
	s1, err := New(stageConfig(t, dir, udp, "one", true), 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	s1.Start(context.Background(), nil)
	publish(s1, 0, 30)

	// A changed sink whose TLS file is missing: Prepare fails, s1 runs on.
	bad := stageConfig(t, dir, udp, "one", true)
	bad.Sinks[1].Syslog.Transport = "tls"
	bad.Sinks[1].Syslog.TLSCA = filepath.Join(dir, "missing-ca.pem")
	if _, err := s1.Prepare(bad, 1); err == nil || !strings.Contains(err.Error(), "missing-ca.pem") {
		t.Fatalf("Prepare with a missing TLS file: %v", err)
	}

	s2, err := s1.Prepare(stageConfig(t, dir, udp, "two", false), 1)
	if err != nil {
		t.Fatal(err)
	}
	if s2.lane("file").d != s1.lane("file").d {
		t.Error("the unchanged file sink was rebuilt")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s2.Start(ctx, s1)
	publish(s2, 30, 50)
	// 30 to "udp" and 30 to "extra" before, 20 to "udp" after.
	// The runner counts an ack after its write returns, which may be
	// after the peer has the datagram: both are waited for.
	acked := func() float64 { return reg.Snapshot()[`audisp_enrich_sink_acked_total{sink="udp"}`] }
	deadline := time.Now().Add(5 * time.Second)
	for (got.Load() < 80 || acked() < 50) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := got.Load(); n != 80 {
		t.Errorf("the peer got %d datagrams, want 80", n)
	}
	snap := reg.Snapshot()
	for _, name := range []string{"audisp_enrich_sink_published_total", "audisp_enrich_sink_acked_total"} {
		if v := snap[name+`{sink="udp"}`]; v != 50 {
			t.Errorf("%s{sink=\"udp\"} = %g after the handover, want 50", name, v)
		}
	}
	for k := range snap {
		if strings.Contains(k, `sink="extra"`) {
			t.Errorf("series of the removed sink still registered: %s", k)
		}
	}
	s2.Stop(ctx)
	b, err := os.ReadFile(filepath.Join(dir, "events.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 50 {
		t.Errorf("the kept file sink has %d documents, want 50", n)
	}
}

// TestLocalBatchArenaBounded: a file sink batches documents in an arena of
// localBatchBytes that never grows for ordinary documents (a document
// larger than it gets an arena of its own, dropped after its write), and
// the file gets every document, whole and in order.
func TestLocalBatchArenaBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	cfg, err := conf.Parse("stage.toml", []byte(fmt.Sprintf("state_dir = %q\n[log]\nsyslog = false\n[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n", dir, path)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, 1, Options{Metrics: &metrics.Registry{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background(), nil)
	d := s.lanes[0].d.(*direct)
	var buf []byte
	var want strings.Builder
	for i := range 400 {
		size := 100 + i*37%9000
		if i == 200 {
			size = 3 * localBatchBytes
		}
		ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1700000000, Serial: uint32(i)}, Enrichment: audit.Enrichment{Warnings: []string{strings.Repeat("w", size)}}}
		buf = s.Encode(0, ev, buf[:0])
		want.Write(buf)
		s.Deliver(ev, buf)
		if i != 200 && cap(d.arena) != localBatchBytes {
			t.Fatalf("document %d (%d bytes): arena of %d bytes, want %d", i, len(buf), cap(d.arena), localBatchBytes)
		}
	}
	s.Stop(context.Background())
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Errorf("the file differs from the documents delivered (%d bytes, want %d)", len(got), want.Len())
	}
}

// TestFilterOnLists: sinks filtered on record types, rule keys and
// techniques get exactly the events that carry them, whichever other
// sinks the stage has.
func TestFilterOnLists(t *testing.T) {
	dir := t.TempDir()
	toml := fmt.Sprintf("state_dir = %q\n[log]\nsyslog = false\n", dir)
	for _, sk := range [][2]string{{"all", ""}, {"exec", `types = ["EXECVE"]`}, {"key", `keys = ["k1"]`}, {"tech", `techniques = ["T1059"]`}} {
		toml += fmt.Sprintf("[[sink]]\nname = %q\ntype = \"file\"\n[sink.file]\npath = %q\n", sk[0], filepath.Join(dir, sk[0]))
		if sk[1] != "" {
			toml += "[sink.filter]\n" + sk[1] + "\n"
		}
	}
	cfg, err := conf.Parse("stage.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, 1, Options{Metrics: &metrics.Registry{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background(), nil)
	var p audit.Parser
	event := func(serial int, techniques []audit.Technique, lines ...string) *audit.Event {
		ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1700000000, Serial: uint32(serial)}}
		for _, l := range lines {
			r, err := p.Parse(fmt.Sprintf(l, serial))
			if err != nil {
				t.Fatal(err)
			}
			ev.Records = append(ev.Records, r)
		}
		ev.Techniques = techniques
		return ev
	}
	const syscall = `type=SYSCALL msg=audit(1700000000.000:%d): arch=c000003e syscall=59 success=yes exit=0 pid=1 comm="x" key=`
	evs := []*audit.Event{
		event(1, nil, syscall+`"k1"`, `type=EXECVE msg=audit(1700000000.000:%d): argc=1 a0="ls"`),
		event(2, nil, syscall+`"k2"`),
		event(3, []audit.Technique{{ID: "T1059.004", ParentID: "T1059"}}, syscall+`(null)`),
	}
	var buf []byte
	for _, ev := range evs {
		buf = s.Encode(0, ev, buf[:0])
		s.Deliver(ev, buf)
	}
	s.Stop(context.Background())
	for name, want := range map[string][]string{"all": {`:1"`, `:2"`, `:3"`}, "exec": {`:1"`}, "key": {`:1"`}, "tech": {`:3"`}} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("sink %s: %d documents, want %d:\n%s", name, len(lines), len(want), got)
		}
		for i, id := range want {
			if !strings.Contains(lines[i], `"id":"`) || !strings.Contains(lines[i], "1700000000.000"+id) {
				t.Errorf("sink %s document %d is not event %s: %s", name, i, id, lines[i])
			}
		}
	}
}

// TestSyslogCarriesEventLists: a network sink with no filter still gets an
// event's record types, rule keys and techniques (its syslog structured
// data; Kafka's headers and topic template read the same metadata).
func TestSyslogCarriesEventLists(t *testing.T) {
	dir := t.TempDir()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := conf.Parse("stage.toml", []byte(fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "udp"
type = "syslog"
[sink.buffer]
type = "memory"
[sink.syslog]
transport = "udp"
address = %q
`, dir, c.LocalAddr().String())))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, 1, Options{Metrics: &metrics.Registry{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background(), nil)
	defer s.Stop(context.Background())
	var p audit.Parser
	ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1700000000, Serial: 7}}
	ev.Techniques = []audit.Technique{{ID: "T1059.004", ParentID: "T1059"}}
	for _, l := range []string{
		`type=SYSCALL msg=audit(1700000000.000:7): arch=c000003e syscall=59 success=yes exit=0 pid=1 comm="x" key="k1"`,
		`type=EXECVE msg=audit(1700000000.000:7): argc=1 a0="ls"`,
	} {
		r, err := p.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		ev.Records = append(ev.Records, r)
	}
	s.Deliver(ev, s.Encode(0, ev, nil))
	s.Flush()
	buf := make([]byte, 1<<16)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`type="SYSCALL,EXECVE"`, `key="k1"`, `technique="T1059.004"`} {
		if !strings.Contains(string(buf[:n]), want) {
			t.Errorf("the syslog message lacks %s: %.300s", want, buf[:n])
		}
	}
}

// udpStage builds (does not start) the stage of stageConfig with app name
// "one" and no extra sink, with a registry of its own and log (nil:
// discard); config gives the same configuration with another app name.
func udpStage(t *testing.T, log *slog.Logger) (s *Stage, reg *metrics.Registry, config func(appName string) *conf.Config) {
	t.Helper()
	dir := t.TempDir()
	udp, _ := udpPeer(t)
	config = func(appName string) *conf.Config { return stageConfig(t, dir, udp, appName, false) }
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg = &metrics.Registry{}
	s, err := New(config("one"), 1, Options{Metrics: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return s, reg, config
}

// TestHandedOverSinkAfterStop: a network sink whose settings a reload
// changed (its buffer handed over to a new Sink) counts the documents
// published after it stopped (an aborted shutdown) like any other sink,
// instead of crashing.
func TestHandedOverSinkAfterStop(t *testing.T) {
	s1, reg, config := udpStage(t, nil)
	s1.Start(context.Background(), nil)
	s2, err := s1.Prepare(config("two"), 1)
	if err != nil {
		t.Fatal(err)
	}
	s2.Start(context.Background(), s1)
	s2.Abort()
	publish(s2, 0, 3)
	s2.Stop(context.Background())
	if v := reg.Snapshot()[`audisp_enrich_sink_dropped_total{sink="udp",reason="shutdown"}`]; v != 3 {
		t.Errorf("dropped{shutdown} = %g after 3 documents published to the stopped sink, want 3", v)
	}
}

// TestPublishedAfterStopCountedOnce: documents published to a network
// sink after it stopped are counted once, as reason "shutdown", and logged
// in one line with their count; the buffer does not count them too.
func TestPublishedAfterStopCountedOnce(t *testing.T) {
	var logged strings.Builder
	s, reg, _ := udpStage(t, slog.New(slog.NewTextHandler(&logged, nil)))
	s.Start(context.Background(), nil)
	s.Abort()
	publish(s, 0, 5)
	s.Stop(context.Background())
	dropped := 0.0
	for k, v := range reg.Snapshot() {
		if strings.HasPrefix(k, `audisp_enrich_sink_dropped_total{sink="udp"`) {
			dropped += v
		}
	}
	if v := reg.Snapshot()[`audisp_enrich_sink_dropped_total{sink="udp",reason="shutdown"}`]; v != 5 || dropped != 5 {
		t.Errorf("5 documents published after the stop: dropped{shutdown} = %g, all reasons = %g; want 5 and 5", v, dropped)
	}
	if n := strings.Count(logged.String(), "level=ERROR"); n != 1 || !strings.Contains(logged.String(), "count=5") {
		t.Errorf("want one ERROR line with count=5, got:\n%s", logged.String())
	}
}

// TestDiscardDoesNotWaitForDelivery: discarding a stage that was never
// started (a failed start or reload) closes a network sink with a backlog
// at once, instead of waiting for progress its never-started runner
// cannot make (stopStall), and the backlog of its memory buffer is counted.
func TestDiscardDoesNotWaitForDelivery(t *testing.T) {
	s, reg, _ := udpStage(t, nil)
	publish(s, 0, 5)
	start := time.Now()
	s.Discard()
	if d := time.Since(start); d > stopStall/2 {
		t.Errorf("Discard took %v with 5 documents queued", d)
	}
	if v := reg.Snapshot()[`audisp_enrich_sink_dropped_total{sink="udp",reason="shutdown"}`]; v != 5 {
		t.Errorf("dropped{shutdown} = %g, want the 5 documents the memory buffer held", v)
	}
}

// TestDirectLogsFailureOnce: a local sink that cannot open its file drops
// every flush's documents (counted) but logs that once, as an error with
// its cause, and once more when it writes again, with the count dropped
// meanwhile; not a line per flush.
func TestDirectLogsFailureOnce(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs") // a file where the sink's directory should be
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := file.NewFile("events", filepath.Join(blocker, "events.json"), 0, 1, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	reg := &metrics.Registry{}
	d := newDirect(s, reg, slog.New(slog.NewTextHandler(&logged, nil)))
	flushes := func(n int) {
		for i := range n {
			d.publish(sinks.Message{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
			d.flush()
		}
	}
	flushes(5)
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	flushes(2)
	d.stop(context.Background())

	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 ||
		!strings.Contains(lines[0], `level=ERROR msg="sink write failed; documents dropped`) || !strings.Contains(lines[0], "not a directory") ||
		!strings.Contains(lines[1], `level=INFO msg="sink writes again" sink=events dropped=5`) {
		t.Errorf("want one error with its cause, then one line saying it writes again after 5 dropped; logged:\n%s", logged.String())
	}
	if got := d.failed.Value(); got != 5 {
		t.Errorf("write_error drops %d, want 5", got)
	}
	if b, _ := os.ReadFile(filepath.Join(blocker, "events.json")); strings.Count(string(b), "\n") != 2 {
		t.Errorf("the file has %q, want the 2 documents after it could be made", b)
	}
}
