package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// broker is a one-broker kfake cluster on a fixed loopback port with its
// data on disk, so that it can be stopped and started again without losing
// what it stored.
type broker struct {
	t    testing.TB
	addr string
	opts []kfake.Opt
	c    *kfake.Cluster
}

// newBroker prepares a broker with the given topics (one partition each);
// call start to run it.
func newBroker(t testing.TB, topics ...string) *broker {
	t.Helper()
	port := testsupport.FreePort(t, "tcp")
	b := &broker{t: t, addr: "127.0.0.1:" + strconv.Itoa(port),
		opts: []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(t.TempDir()), kfake.SeedTopics(1, topics...)}}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	if b.c != nil {
		return
	}
	var err error
	// The port may take a moment to be free again after a stop.
	for i := 0; i < 50; i++ {
		if b.c, err = kfake.NewCluster(b.opts...); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("start kfake on %s: %v", b.addr, err)
}

func (b *broker) stop() {
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

// kcat reads every message of topic from the beginning with kcat (the
// independent consumer) and returns the payloads. The payloads are JSON
// documents, which never contain a newline.
func kcat(t testing.TB, addr, topic string) [][]byte {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required as the independent Kafka consumer (Debian package kcat): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n",
		"-X", "topic.metadata.refresh.interval.ms=100"}
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return splitLines(out)
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// rsyslogd is a real rsyslogd on a loopback tcp port writing the MSG part
// of every record, one per line, to out.
type rsyslogd struct {
	t      testing.TB
	dir    string
	conf   string
	out    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	stderr bytes.Buffer
}

// newRsyslog writes a config for an imptcp input on a free port (octet
// counting and LF framing) and a file output; start runs it. When
// unixSocket is set, an imuxsock input on that path feeds the same file,
// and each record is written as "PROGRAM[PID]|MSG", PID being the
// sender's process id as the socket's credentials give it.
func newRsyslog(t testing.TB, unixSocket string) *rsyslogd {
	t.Helper()
	testsupport.SkipShort(t, "starts a real rsyslogd")
	dir := t.TempDir()
	r := &rsyslogd{t: t, dir: dir, out: filepath.Join(dir, "messages.log"), port: testsupport.FreePort(t, "tcp")}
	var c strings.Builder
	fmt.Fprintf(&c, "global(workDirectory=%q maxMessageSize=\"256k\")\n", dir)
	fmt.Fprintf(&c, "module(load=\"imptcp\")\ninput(type=\"imptcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n", r.port)
	format := "%programname%|%msg%\\n"
	if unixSocket != "" {
		c.WriteString("module(load=\"imuxsock\" sysSock.use=\"off\")\n")
		fmt.Fprintf(&c, "input(type=\"imuxsock\" socket=%q ruleset=\"r\" usePIDFromSystem=\"on\")\n", unixSocket)
		format = "%programname%[%procid%]|%msg%\\n"
	}
	fmt.Fprintf(&c, "template(name=\"m\" type=\"string\" string=\"%s\")\n", format)
	fmt.Fprintf(&c, "ruleset(name=\"r\") {\n action(type=\"omfile\" file=%q template=\"m\")\n}\n", r.out)
	r.conf = filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(r.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

func rsyslogBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("rsyslogd not found: install the Debian package rsyslog")
	return ""
}

func (r *rsyslogd) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start runs rsyslogd in the foreground and waits until it listens.
func (r *rsyslogd) start() {
	r.t.Helper()
	r.stderr.Reset()
	r.cmd = exec.Command(rsyslogBinary(r.t), "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = &r.stderr, &r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start rsyslogd: %v", err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(r.cmd, r.exited)
	deadline := time.Now().Add(10 * time.Second)
	for !testsupport.Listening("tcp", r.port) {
		select {
		case <-r.exited:
			r.t.Fatalf("rsyslogd exited at startup: %s", r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd did not listen on %d within 10s: %s", r.port, r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops rsyslogd by PID (SIGTERM, then SIGKILL after 5 s).
func (r *rsyslogd) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// docs returns the JSON documents rsyslogd wrote for records of program
// (the sink's app_name).
func (r *rsyslogd) docs(program string) [][]byte {
	b, _ := os.ReadFile(r.out)
	var out [][]byte
	for _, l := range splitLines(b) {
		if rest, ok := bytes.CutPrefix(l, []byte(program+"|")); ok {
			out = append(out, bytes.TrimSpace(rest))
		}
	}
	return out
}

// lines returns every record rsyslogd wrote as "PROGRAM|MSG".
func (r *rsyslogd) lines() []string {
	b, _ := os.ReadFile(r.out)
	var out []string
	for _, l := range splitLines(b) {
		out = append(out, string(l))
	}
	return out
}

// remoteStamps runs `ausearch -if LOG --node NODE --raw` on a collector
// log and returns, per event stamp ("SEC.MSEC:SERIAL"), how many times the
// event from node was logged: a duplicate delivery logs the same record
// lines again, so an event counts as often as its most frequent line.
func remoteStamps(t testing.TB, log, node string) map[string]int {
	t.Helper()
	bin, err := exec.LookPath("ausearch")
	if err != nil {
		t.Fatalf("ausearch not found (Debian package auditd): %v", err)
	}
	out, err := exec.Command(bin, "-if", log, "--node", node, "--raw").CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("<no matches>")) {
		t.Fatalf("ausearch -if %s --node %s: %v\n%.2000s", log, node, err, out)
	}
	perRec := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "node="+node+" ") {
			continue
		}
		m := stampRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		perRec[m[1]+"."+m[2]+":"+m[3]+"\x00"+line]++
	}
	got := map[string]int{}
	for k, n := range perRec {
		id, _, _ := strings.Cut(k, "\x00")
		got[id] = max(got[id], n)
	}
	return got
}

// auditdState asks auditd for its state report (SIGCONT, what `auditctl
// --signal cont` sends; audit 3.0.9's auditctl has no --signal) and
// returns /var/run/auditd.state once it was rewritten.
func auditdState(t testing.TB, pid int) string {
	t.Helper()
	const path = "/var/run/auditd.state"
	before, _ := os.Stat(path)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT to auditd %d: %v", pid, err)
	}
	var b []byte
	ok := testsupport.Until(5*time.Second, func() bool {
		st, err := os.Stat(path)
		if err != nil || (before != nil && !st.ModTime().After(before.ModTime()) && st.Size() == before.Size()) {
			return false
		}
		b, err = os.ReadFile(path)
		return err == nil && bytes.Contains(b, []byte("plugin queue overflow detected"))
	})
	if !ok {
		t.Fatalf("auditd did not write %s after SIGCONT", path)
	}
	return string(b)
}

// devLog captures the local syslog socket /dev/log into an rsyslogd of the
// test, for as long as the test runs, so that what auditd logs (it logs
// only to syslog) can be read. It returns nil when /dev/log already exists
// (a system logger owns it; the test then cannot read auditd's messages).
// Records are "PROGRAM[PID]|MSG": the capture starts before the test's
// auditd (to have its start), while another test's auditd may still run
// and log into it, so a test keeps the lines of its own auditd's PID.
func devLog(t testing.TB) *rsyslogd {
	t.Helper()
	const sock = "/dev/log"
	if _, err := os.Lstat(sock); err == nil {
		t.Logf("%s exists (a system logger runs); auditd's own messages go there and are not checked here", sock)
		return nil
	}
	r := newRsyslog(t, sock)
	r.start()
	if !testsupport.Until(5*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatalf("rsyslogd did not create %s: %s", sock, r.stderr.String())
	}
	t.Cleanup(func() {
		r.stop()
		// rsyslogd unlinks its socket on exit; make sure.
		if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(sock)
		}
	})
	return r
}
