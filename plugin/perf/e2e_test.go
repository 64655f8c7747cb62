package perf

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// BenchmarkEndToEnd measures events/s from an audit log on stdin through
// audisp-enrich in plugin mode (every local enricher on) into a real
// receiver, timed from the start of the process to the arrival of the last
// document at the receiver. stdin stays open until then: `replay` (and
// plugin mode at EOF) exits after a short grace period and leaves what the
// network sinks have not sent yet in their buffers. The sinks:
//
//   - kafka-disk, kafka-memory: a kfake broker (in this process) on
//     loopback, the Kafka sink with its disk (default) or memory buffer; a
//     franz-go consumer counts the arrivals and kcat re-counts them
//     afterwards as the independent consumer;
//   - rsyslog: rsyslogd (imptcp, omfile) on loopback, the syslog sink
//     (RFC 5424, octet counting, TCP); arrivals are lines in its file;
//   - syslog-ng-kafka: for comparison, syslog-ng's linux-audit() source
//     (file, linux-audit-parser, kv-parser) with its kafka-c() destination
//     into the same kind of broker. It publishes one message per record
//     (no reassembly, no enrichment), so its rate is given in records/s.
//     SYSLOG_NG_ROOT names an unpacked syslog-ng tree (plugin/perf/e2e.sh
//     unpacks Debian's syslog-ng-core, -scl and -mod-rdkafka there, since
//     syslog-ng-core conflicts with the installed rsyslog).
//
// One op is the whole corpus: AUDISP_ENRICH_CORPUS, default the bundled
// capture. Metrics: events/s and records/s.
func BenchmarkEndToEnd(b *testing.B) {
	corpus := os.Getenv("AUDISP_ENRICH_CORPUS")
	if corpus == "" {
		corpus = filepath.Join("..", "testdata", "capture.log")
	}
	corpus, _ = filepath.Abs(corpus)
	records, _, err := countFile(corpus)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	bin := goBuild(b, dir, "audisp-enrich", "./plugin/cmd/audisp-enrich")
	block := filepath.Join(dir, "block.txt")
	var bl bytes.Buffer
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&bl, "%064x e2e-%d\n", i*7919+1, i)
	}
	writeFile(b, block, bl.String())
	enrichCfg := func(state, sink string) string {
		// max_procs = 0: the capacity of the whole machine, not the
		// one-core default that keeps the live cost low.
		return fmt.Sprintf(`user = "root"
state_dir = %q
max_procs = 0
[log]
syslog = false
[enrich.hunt]
enabled = true
[enrich.blocklist]
enabled = true
[[enrich.blocklist.lists]]
name = "e2e"
path = %q
%s`, state, block, sink)
	}
	// The expected document count: the same replay into a file.
	base := filepath.Join(dir, "base")
	mustMkdir(b, base)
	baseOut := filepath.Join(base, "out.json")
	cfg := filepath.Join(base, "c.toml")
	writeFile(b, cfg, enrichCfg(base, fmt.Sprintf("[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\nmax_bytes = 0\n", baseOut)))
	replay(b, bin, cfg, corpus)
	want, _, err := countFile(baseOut)
	if err != nil || want == 0 {
		b.Fatalf("baseline replay wrote %d documents: %v", want, err)
	}
	// Events the corpus leaves without an end marker are closed by the
	// end-of-event timeout: in plugin mode after eoe_timeout (2 s) of wall
	// time, whatever the throughput. The clock stops when every other
	// document has arrived; the late ones must still arrive.
	baseDocs, err := os.ReadFile(baseOut)
	if err != nil {
		b.Fatal(err)
	}
	late := int64(bytes.Count(baseDocs, []byte(`"timed_out":true`)))
	onTime := want - late
	b.Logf("%d documents, %d of them closed by the end-of-event timeout", want, late)

	for _, buf := range []string{"disk", "memory"} {
		b.Run("kafka-"+buf, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				state := filepath.Join(b.TempDir(), "state")
				mustMkdir(b, state)
				c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "audit"))
				if err != nil {
					b.Fatal(err)
				}
				addr := c.ListenAddrs()[0]
				cfg := filepath.Join(state, "c.toml")
				writeFile(b, cfg, enrichCfg(state, fmt.Sprintf(`[[sink]]
type = "kafka"
[sink.buffer]
type = %q
[sink.kafka]
brokers = [%q]
topic = "audit"
`, buf, addr)))
				var got atomic.Int64
				stop := consumeCount(b, addr, "audit", &got)
				start := time.Now()
				cmd := startPlugin(b, bin, cfg, corpus)
				last := waitCount(b, &got, onTime, 120*time.Second)
				el := last.Sub(start)
				waitCount(b, &got, want, 10*time.Second)
				cmd.stop(b)
				stop()
				if n := kcatCount(b, addr, "audit"); n != want {
					b.Errorf("kcat counted %d messages, want %d", n, want)
				}
				c.Close()
				report(b, onTime, records, el)
			}
		})
	}

	b.Run("rsyslog", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			state := filepath.Join(b.TempDir(), "state")
			mustMkdir(b, state)
			port := testsupport.FreePort(b, "tcp")
			out := startRsyslog(b, state, port)
			cfg := filepath.Join(state, "c.toml")
			writeFile(b, cfg, enrichCfg(state, fmt.Sprintf(`[[sink]]
type = "syslog"
[sink.syslog]
address = "127.0.0.1:%d"
transport = "tcp"
framing = "octet-counting"
max_message_bytes = 1048576
`, port)))
			start := time.Now()
			cmd := startPlugin(b, bin, cfg, corpus)
			var got atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				tailCount(out, want, &got, start.Add(120*time.Second))
			}()
			last := waitCount(b, &got, onTime, 125*time.Second)
			waitCount(b, &got, want, 10*time.Second)
			<-done
			cmd.stop(b)
			report(b, onTime, records, last.Sub(start))
		}
	})

	b.Run("syslog-ng-kafka", func(b *testing.B) {
		root := os.Getenv("SYSLOG_NG_ROOT")
		if root == "" {
			root = "/var/tmp/audisp-enrich-peers/syslog-ng"
		}
		sng := filepath.Join(root, "usr", "sbin", "syslog-ng")
		if _, err := os.Stat(sng); err != nil {
			b.Fatalf("syslog-ng not found at %s (run plugin/perf/e2e.sh, which unpacks Debian's syslog-ng-core, syslog-ng-scl and syslog-ng-mod-rdkafka there): %v", sng, err)
		}
		for i := 0; i < b.N; i++ {
			work := b.TempDir()
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sng"))
			if err != nil {
				b.Fatal(err)
			}
			addr := c.ListenAddrs()[0]
			scl := filepath.Join(root, "usr", "share", "syslog-ng", "include", "scl")
			conf := fmt.Sprintf(`@version: 3.38
options { stats-freq(0); keep-hostname(yes); };
@include "%s/linux-audit/linux-audit.conf"
source s_audit { linux-audit(filename(%q) follow-freq(1) log-fetch-limit(1000) log-iw-size(100000)); };
destination d_kafka {
  kafka-c(bootstrap-servers(%q) topic("sng")
    message("$(format-json --scope nv-pairs --key .auditd.*)")
    config("linger.ms" => "5" "queue.buffering.max.messages" => "1000000"));
};
log { source(s_audit); destination(d_kafka); };
`, scl, corpus, addr)
			confPath := filepath.Join(work, "syslog-ng.conf")
			writeFile(b, confPath, conf)
			var got atomic.Int64
			stop := consumeCount(b, addr, "sng", &got)
			cmd := exec.Command(sng, "-F", "--no-caps", "-f", confPath,
				"--module-path", filepath.Join(root, "usr", "lib", "syslog-ng", "3.38"),
				"-R", filepath.Join(work, "persist"), "-p", filepath.Join(work, "pid"), "-c", filepath.Join(work, "ctl"))
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr", "lib", "syslog-ng"))
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			// syslog-ng never ends a file source, and it drops the records its
			// parsers reject, so the run ends when nothing new has arrived
			// for 5 s; the delivered share is reported.
			deadline := time.Now().Add(120 * time.Second)
			var last time.Time
			var n int64
			for time.Now().Before(deadline) {
				if c := got.Load(); c != n {
					n, last = c, time.Now()
				} else if n > 0 && time.Since(last) > 5*time.Second || n >= records {
					break
				}
				select {
				case <-exited:
					b.Fatalf("syslog-ng exited after %d of %d messages: %s", got.Load(), records, stderr.String())
				default:
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n == 0 {
				b.Fatalf("syslog-ng delivered nothing in 120 s: %s", stderr.String())
			}
			if n < records {
				b.Logf("syslog-ng delivered %d of %d records (%.1f%%); stderr: %s", n, records, 100*float64(n)/float64(records), tail(stderr.String(), 2000))
			}
			_ = cmd.Process.Signal(os.Interrupt)
			<-exited
			stop()
			c.Close()
			el := last.Sub(start)
			b.ReportMetric(float64(n)/el.Seconds(), "records/s")
			b.ReportMetric(100*float64(n)/float64(records), "%delivered")
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// report sets the benchmark's figures for one run of the corpus.
func report(b *testing.B, events, records int64, el time.Duration) {
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
	b.ReportMetric(float64(records)/el.Seconds(), "records/s")
}

func mustMkdir(b testing.TB, d string) {
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
}

// countFile counts the newline-terminated non-empty lines of path.
func countFile(path string) (int64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var n, size int64
	for {
		line, err := br.ReadSlice('\n')
		size += int64(len(line))
		if err == nil && len(line) > 1 {
			n++
		}
		if err == io.EOF {
			return n, size, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, 0, err
		}
	}
}

// tailCount counts the lines appended to path into got until want or the
// deadline, reading only the new bytes each time.
func tailCount(path string, want int64, got *atomic.Int64, deadline time.Time) {
	var f *os.File
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) && got.Load() < want {
		if f == nil {
			f, _ = os.Open(path)
		}
		if f != nil {
			for {
				n, err := f.Read(buf)
				got.Add(int64(bytes.Count(buf[:n], []byte{'\n'})))
				if err != nil || n == 0 {
					break
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if f != nil {
		f.Close()
	}
}

func replay(b testing.TB, bin, cfg, corpus string) {
	cmd := startReplay(b, bin, cfg, corpus)
	waitCmd(b, cmd)
}

// pluginCmd is audisp-enrich in plugin mode, fed the corpus on stdin.
type pluginCmd struct {
	*exec.Cmd
	stdin  io.WriteCloser
	fed    chan error
	stderr *bytes.Buffer
}

// startPlugin starts plugin mode and copies corpus into its stdin, which
// stays open until stop.
func startPlugin(b testing.TB, bin, cfg, corpus string) *pluginCmd {
	f, err := os.Open(corpus)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &pluginCmd{Cmd: cmd, stdin: in, fed: make(chan error, 1), stderr: &stderr}
	go func() {
		_, err := io.Copy(in, f)
		f.Close()
		p.fed <- err
	}()
	return p
}

// stop closes stdin (EOF: the plugin shuts down) and waits for the exit.
func (p *pluginCmd) stop(b testing.TB) {
	if err := <-p.fed; err != nil {
		b.Errorf("feeding the plugin: %v", err)
	}
	p.stdin.Close()
	if err := p.Wait(); err != nil {
		b.Fatalf("%v: %v\n%s", p.Args, err, p.stderr)
	}
}

type replayCmd struct {
	*exec.Cmd
	stderr *bytes.Buffer
}

func startReplay(b testing.TB, bin, cfg, corpus string) replayCmd {
	cmd := exec.Command(bin, "replay", "--config", cfg, corpus)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return replayCmd{cmd, &stderr}
}

func waitCmd(b testing.TB, c replayCmd) {
	if err := c.Wait(); err != nil {
		b.Fatalf("%v: %v\n%s", c.Args, err, c.stderr)
	}
}

// waitCount waits until got reaches want and returns when it did.
func waitCount(b testing.TB, got *atomic.Int64, want int64, limit time.Duration) time.Time {
	deadline := time.Now().Add(limit)
	for got.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d documents arrived within %v", got.Load(), want, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Now()
}

// consumeCount counts the records of topic from the start into got until
// the returned stop is called.
func consumeCount(b testing.TB, addr, topic string, got *atomic.Int64) (stop func()) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			got.Add(int64(fs.NumRecords()))
		}
	}()
	return func() { cancel(); <-done; cl.Close() }
}

// kcatCount counts the messages of topic with kcat (the independent
// consumer).
func kcatCount(b testing.TB, addr, topic string) int64 {
	path, err := exec.LookPath("kcat")
	if err != nil {
		b.Fatalf("kcat is required as the independent Kafka consumer (Debian package kcat): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n").Output()
	if err != nil {
		b.Fatalf("kcat: %v", err)
	}
	return int64(bytes.Count(out, []byte{'\n'}))
}

// startRsyslog starts rsyslogd with a TCP input on port writing every
// message as one line to DIR/out.log, and returns that path. It is stopped
// by PID when the benchmark ends.
func startRsyslog(b testing.TB, dir string, port int) string {
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, err := os.Stat(bin); err != nil {
			b.Fatal("rsyslogd not found: install the Debian package rsyslog")
		}
	}
	out := filepath.Join(dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="1m")
module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="%d" ruleset="r")
template(name="msg" type="string" string="%%msg%%\n")
ruleset(name="r" queue.type="fixedArray" queue.size="250000" queue.dequeueBatchSize="4096") {
 action(type="omfile" file=%q template="msg" asyncWriting="off" ioBufferSize="1m" flushOnTXEnd="on")
}
`, dir, port, out)
	confPath := filepath.Join(dir, "rsyslog.conf")
	writeFile(b, confPath, conf)
	cmd := exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return out
		}
		select {
		case <-exited:
			b.Fatalf("rsyslogd exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("rsyslogd did not listen on %d: %s", port, strings.TrimSpace(stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
