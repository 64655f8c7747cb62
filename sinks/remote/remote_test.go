package remote

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// collector starts a real auditd that logs what it receives on a loopback
// tcp_listen_port and does not touch kernel audit (local_events = no).
func collector(t testing.TB, port int, conf map[string]string) *auditdtest.Auditd {
	t.Helper()
	c := map[string]string{
		"local_events":     "no",
		"tcp_listen_port":  fmt.Sprint(port),
		"tcp_listen_queue": "5",
		"tcp_max_per_addr": "1",
		"use_libwrap":      "no",
		"flush":            "INCREMENTAL_ASYNC",
		"freq":             "1",
	}
	for k, v := range conf {
		c[k] = v
	}
	a := auditdtest.Start(t, auditdtest.Options{Conf: c})
	if !testsupport.Until(10*time.Second, func() bool { return testsupport.Listening("tcp", port) }) {
		log, _ := os.ReadFile(a.LogFile)
		t.Fatalf("auditd is not listening on %d; output: %s\nlog:\n%s", port, a.Stderr, log)
	}
	return a
}

// event renders the records of one audit event the way the lead's encoder
// will: FormatRecordLine per record, enrichment on the SYSCALL record.
func event(serial int, key string) []byte {
	stamp := fmt.Sprintf("msg=audit(1700000000.%03d:%d):", serial%1000, serial)
	recs := []string{
		"type=SYSCALL " + stamp + ` arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=2 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="sh" exe="/usr/bin/dash" key="` + key + `"` + gs + `ARCH=x86_64 SYSCALL=execve AUID="dave" UID="root"`,
		"type=EXECVE " + stamp + ` argc=2 a0="sh" a1="-c"`,
		"type=PATH " + stamp + ` item=0 name="/usr/bin/dash" inode=5 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`,
		"type=PROCTITLE " + stamp + " proctitle=7368002D63",
		"type=EOE " + stamp + " ",
	}
	var b strings.Builder
	for i, r := range recs {
		var ex [][2]string
		if i == 0 {
			ex = [][2]string{{"technique", "T1059.004"}, {"vt", fmt.Sprintf("malicious %d/70", serial)}}
		}
		b.WriteString(FormatRecordLine("sender-1", r, ex) + "\n")
	}
	return []byte(b.String())
}

func ausearch(t *testing.T, log string, args ...string) string {
	t.Helper()
	out, err := exec.Command(needAusearch(t), append([]string{"-if", log, "-i"}, args...)...).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "<no matches>") {
		t.Fatalf("ausearch %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func newSink(t testing.TB, port int, mod func(*Config)) *Sink {
	t.Helper()
	cfg := Config{Address: fmt.Sprint("127.0.0.1:", port), AckTimeout: 2 * time.Second, DialTimeout: time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(t.Name(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestRemoteAuditd sends enriched events to a stock auditd collector and
// finds them, with their enrichment fields, with ausearch in its log.
func TestRemoteAuditd(t *testing.T) {
	port := testsupport.FreePort(t, "tcp")
	a := collector(t, port, nil)
	s := newSink(t, port, nil)
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var batch []sinks.Message
	for i := 1; i <= 10; i++ {
		batch = append(batch, sinks.Message{Seq: uint64(i), Value: event(100+i, "remote_key")})
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// 10 events × 4 lines acknowledged one by one, sequence 2..41, EOE not sent.
	if got := s.m.lines.Value(); got != 40 {
		t.Errorf("lines acked = %d, want 40", got)
	}
	if s.seq != 41 || s.m.eoe.Value() != 10 || s.m.mismatch.Value() != 0 {
		t.Errorf("seq %d eoe %d mismatch %d; want 41 10 0", s.seq, s.m.eoe.Value(), s.m.mismatch.Value())
	}
	out := ausearch(t, a.LogFile, "-k", "remote_key")
	if n := strings.Count(out, "type=SYSCALL"); n != 10 {
		t.Errorf("ausearch found %d SYSCALL records, want 10:\n%s", n, out)
	}
	for _, want := range []string{"node=sender-1 type=SYSCALL", "node=sender-1 type=EXECVE", "node=sender-1 type=PROCTITLE",
		`enrich_technique="T1059.004"`, "enrich_vt=6D616C6963696F7573203130312F3730", "auid=dave", "proctitle=sh -c"} {
		if !strings.Contains(out, want) {
			t.Errorf("ausearch output lacks %q", want)
		}
	}
	log, _ := os.ReadFile(a.LogFile)
	if strings.Contains(string(log), "type=EOE") {
		t.Errorf("EOE records reached the collector log")
	}
	if n := strings.Count(string(log), "type=SYSCALL msg=audit(1700000000.101:101)"); n != 1 {
		t.Errorf("event 101 logged %d times, want 1", n)
	}
}

// TestHeartbeat: auditd drops clients idle for tcp_client_max_idle; with
// heartbeats the connection survives the idle time, without them it does
// not (the next write has to reconnect).
func TestHeartbeat(t *testing.T) {
	port := testsupport.FreePort(t, "tcp")
	collector(t, port, map[string]string{"tcp_client_max_idle": "1", "tcp_max_per_addr": "2"})
	ctx := context.Background()
	hb := newSink(t, port, func(c *Config) { c.HeartbeatInterval = 300 * time.Millisecond })
	if err := hb.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	msg := []sinks.Message{{Seq: 1, Value: event(1, "hb_key")}}
	if err := hb.Write(ctx, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := hb.Write(ctx, msg); err != nil {
		t.Fatalf("write after idle time with heartbeats: %v", err)
	}
	if n := hb.m.heartbeats.Value(); n < 5 {
		t.Errorf("heartbeats acked = %d, want ≥ 5", n)
	}
	if n := hb.m.connects.Value(); n != 1 {
		t.Errorf("connects = %d, want 1 (the connection should have survived)", n)
	}
	hb.Close(ctx)

	quiet := newSink(t, port, nil)
	if err := quiet.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := quiet.Write(ctx, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := quiet.Write(ctx, msg); !errors.Is(err, sinks.ErrNotConnected) {
		t.Fatalf("write after idle time without heartbeats: got %v, want ErrNotConnected", err)
	}
}

// deliver drives s like the sinks runner does: Write, and on
// ErrNotConnected Connect (the sink applies its backoff) and Write again,
// until the batch is acknowledged or d passes.
func deliver(t *testing.T, s *Sink, batch []sinks.Message, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		err := s.Write(ctx, batch)
		if err == nil {
			return
		}
		var p *sinks.PartialError
		if errors.As(err, &p) {
			batch = batch[len(p.Delivered):] // Delivered is always a prefix here
		}
		if !errors.Is(err, sinks.ErrNotConnected) {
			t.Fatalf("write: %v", err)
		}
		for {
			if ctx.Err() != nil {
				t.Fatalf("not delivered within %v: %v", d, err)
			}
			if err = s.Connect(ctx); err == nil {
				break
			}
		}
	}
}

func events(from, to int, key string) []sinks.Message {
	var b []sinks.Message
	for i := from; i <= to; i++ {
		b = append(b, sinks.Message{Seq: uint64(i), Value: event(i, key)})
	}
	return b
}

// TestCollectorRestart: auditd stops (it sends ENDING), events written
// meanwhile fail and are retried with backoff, and arrive once a new
// auditd listens on the same port.
func TestCollectorRestart(t *testing.T) {
	port := testsupport.FreePort(t, "tcp")
	s := newSink(t, port, nil)
	ctx := context.Background()
	t.Run("first", func(t *testing.T) {
		a := collector(t, port, nil)
		deliver(t, s, events(1, 5, "restart_key"), 10*time.Second)
		if out := ausearch(t, a.LogFile, "-k", "restart_key"); strings.Count(out, "type=SYSCALL") != 5 {
			t.Fatalf("first collector: want 5 events:\n%s", out)
		}
		a.Stop()
		if !testsupport.Until(5*time.Second, func() bool { return !testsupport.Listening("tcp", port) }) {
			t.Fatal("auditd still listening after Stop")
		}
		err := s.Write(ctx, events(6, 10, "restart_key"))
		if !errors.Is(err, sinks.ErrNotConnected) {
			t.Fatalf("write to a stopped collector: got %v, want ErrNotConnected", err)
		}
		if n := s.m.ending.Value(); n != 1 {
			t.Errorf("ENDING notices = %d, want 1", n)
		}
		if err := s.Connect(ctx); err == nil {
			t.Fatal("connect to a stopped collector succeeded")
		}
	})
	t.Run("second", func(t *testing.T) {
		a := collector(t, port, nil)
		deliver(t, s, events(6, 10, "restart_key"), 15*time.Second)
		out := ausearch(t, a.LogFile, "-k", "restart_key")
		for i := 6; i <= 10; i++ {
			vt := "enrich_vt=" + strings.ToUpper(hex.EncodeToString([]byte(fmt.Sprintf("malicious %d/70", i))))
			if !strings.Contains(out, fmt.Sprintf(".%03d:%d) :", i, i)) || !strings.Contains(out, vt) {
				t.Errorf("event %d or its enrichment missing from the second collector", i)
			}
		}
		if strings.Count(out, "type=SYSCALL") != 5 {
			t.Errorf("second collector: want exactly events 6..10:\n%s", out)
		}
	})
}

// TestDiskLowFull runs the collector with its log on a 1 MiB tmpfs: below
// space_left it answers DISKLOW (the sink goes on), and once the disk is
// full it answers DISKFULL (the sink closes the connection, backs off and
// keeps the line unacknowledged); after space is freed the lines are
// resent and every event is in the log.
func TestDiskLowFull(t *testing.T) {
	if err := auditdtest.Available(); err != nil {
		t.Skipf("kernel audit unreachable, skipping real-auditd test: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	port := testsupport.FreePort(t, "tcp")
	log := dir + "/audit.log"
	// space_left is in MiB, so a 1 MiB disk is always "low".
	collector(t, port, map[string]string{"log_file": log, "space_left": "75", "admin_space_left": "50",
		"max_log_file": "100", "max_log_file_action": "IGNORE", "tcp_max_per_addr": "2"})
	s := newSink(t, port, nil)
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, events(1, 3, "disk_key")); err != nil {
		t.Fatalf("write while the disk is low: %v", err)
	}
	if n := s.m.diskLow.Value(); n != 12 {
		t.Errorf("DISKLOW replies = %d, want 12 (one per line)", n)
	}
	filler := dir + "/filler"
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o600); err == nil {
		t.Fatal("filler fit on a 1 MiB tmpfs")
	}
	batch := events(4, 30, "disk_key")
	err := s.Write(ctx, batch)
	if !errors.Is(err, sinks.ErrNotConnected) || s.m.diskFull.Value() != 1 {
		t.Fatalf("write to a full disk: got %v with %d DISKFULL, want ErrNotConnected after DISKFULL", err, s.m.diskFull.Value())
	}
	if s.cn != nil || time.Until(s.notAfter) <= 0 {
		t.Errorf("after DISKFULL the sink should be disconnected and backing off")
	}
	var p *sinks.PartialError
	if errors.As(err, &p) {
		batch = batch[len(p.Delivered):]
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deliver(t, s, batch, 15*time.Second)
	// auditd leaves a partial line in the log when a write hits ENOSPC
	// (its write is not undone), which can hide the first event resent
	// after the full disk from ausearch; every line the sink sent is there
	// whole, and ausearch finds all the other events.
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 30; i++ {
		for _, line := range strings.SplitAfter(string(event(i, "disk_key")), "\n") {
			if line != "" && !strings.Contains(line, "type=EOE") && !strings.Contains(string(raw), "\n"+line) {
				t.Errorf("event %d: line missing from the collector log: %s", i, line)
			}
		}
	}
	out := ausearch(t, log, "-k", "disk_key")
	if n := strings.Count(out, "type=SYSCALL"); n < 29 {
		t.Errorf("ausearch found %d of the 30 events", n)
	}
	if t.Failed() {
		t.Logf("log:\n%s", raw)
	}
}

// BenchmarkRemoteAuditd measures acknowledged record lines per second to a
// real auditd collector on loopback (one frame in flight, so this is the
// round-trip rate), 10 events of 4 lines per Write.
func BenchmarkRemoteAuditd(b *testing.B) {
	port := testsupport.FreePort(b, "tcp")
	collector(b, port, map[string]string{"flush": "NONE"})
	s := newSink(b, port, nil)
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	batch := events(1, 10, "bench_key")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.m.lines.Value())/b.Elapsed().Seconds(), "lines/s")
}
