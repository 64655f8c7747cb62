package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// full selects the long reliability runs (make reliability).
var full = os.Getenv("AUDISP_RELIABILITY_FULL") == "1"

// pick returns short in the default run and long in the full one.
func pick[T any](short, long T) T {
	if full {
		return long
	}
	return short
}

func TestMain(m *testing.M) { testsupport.Main(m) }

// config is a plugin config under construction.
type config struct {
	state, listen string
	sinks         []string
}

// newConfig starts a config: root (no privilege drop, so the test can read
// the state dir), logs to stderr, metrics on a free loopback port, /proc
// lookups off (the input is not from this host).
func newConfig(t testing.TB, dir string) *config {
	return &config{state: filepath.Join(dir, "state"), listen: fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))}
}

func (c *config) add(sink string) *config {
	c.sinks = append(c.sinks, sink)
	return c
}

func (c *config) write(t testing.TB, path string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `user = "root"
state_dir = %q
[log]
level = "info"
syslog = false
[status]
interval = "0s"
listen = %q
[enrich.proc]
proc_fallback = false
`, c.state, c.listen)
	for _, s := range c.sinks {
		b.WriteString(s)
	}
	if err := os.MkdirAll(c.state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// delivery makes retries quick so that recovery is measured, not the
// default 30 s backoff cap.
const delivery = `[sink.delivery]
backoff_min = "50ms"
backoff_max = "1s"
`

// kafkaSink is a [[sink]] for a kfake broker; extra is appended (buffer,
// filter tables).
func kafkaSink(name, addr, topic, extra string) string {
	return fmt.Sprintf(`[[sink]]
name = %q
type = "kafka"
[sink.kafka]
brokers = [%q]
topic = %q
dial_timeout = "1s"
write_timeout = "5s"
retry_max = 2
retry_backoff = "50ms"
`, name, addr, topic) + delivery + extra
}

// syslogSink is an RFC 5424 tcp [[sink]] with octet counting; the sink
// name is also its app_name, so rsyslogd's file tells sinks apart.
func syslogSink(name, addr, extra string) string {
	return fmt.Sprintf(`[[sink]]
name = %q
type = "syslog"
[sink.syslog]
address = %q
transport = "tcp"
app_name = %q
hostname = "e2e.test"
max_message_bytes = 65536
`, name, addr, name) + delivery + extra
}

// remoteSink is a remote-auditd [[sink]].
func remoteSink(name, addr, extra string) string {
	return fmt.Sprintf(`[[sink]]
name = %q
type = "remote"
[sink.remote]
address = %q
dial_timeout = "1s"
backoff_min = "50ms"
backoff_max = "1s"
`, name, addr) + delivery + extra
}

// fileSink is a JSON Lines file [[sink]].
func fileSink(name, path, extra string) string {
	return fmt.Sprintf(`[[sink]]
name = %q
type = "file"
[sink.file]
path = %q
max_bytes = 0
`, name, path) + extra
}

// plugin is the binary running in plugin mode with stdin from the test.
type plugin struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	log    string
	listen string
	exited chan struct{}
	state  *os.ProcessState
}

// startPlugin runs `audisp-enrich --config cfg` with a pipe on stdin, its
// stderr appended to logPath, and waits until its metrics listener
// answers. The process is killed when the test ends if it still runs.
func startPlugin(t testing.TB, cfg *config, cfgPath, logPath string) *plugin {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	p := &plugin{t: t, log: logPath, listen: cfg.listen, exited: make(chan struct{})}
	p.cmd = exec.Command(testsupport.PluginBinary(t), "--config", cfgPath)
	p.cmd.Stderr = lf
	p.cmd.Stdout = lf
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.done() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := p.scrape(); err == nil {
			return p
		}
		if p.done() || time.Now().After(deadline) {
			t.Fatalf("plugin did not serve metrics on %s (exited: %v); log:\n%s", p.listen, p.done(), p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *plugin) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// feed writes the records of evs to the plugin's stdin.
func (p *plugin) feed(evs []inEvent) error {
	var b bytes.Buffer
	for _, ev := range evs {
		for _, l := range ev.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	_, err := p.stdin.Write(b.Bytes())
	return err
}

// feedPaced writes evs at about rate events per second, in slices of
// 10 ms (whole events), and returns how many it wrote before the first
// failed write.
func (p *plugin) feedPaced(evs []inEvent, rate int) (int, error) {
	const tick = 10 * time.Millisecond
	per := max(rate*int(tick)/int(time.Second), 1)
	start := time.Now()
	n := 0
	for n < len(evs) {
		end := min(n+per, len(evs))
		if err := p.feed(evs[n:end]); err != nil {
			return n, err
		}
		n = end
		if d := time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
	}
	return n, nil
}

// stop sends sig and waits up to d for the process to exit; it returns how
// long the exit took.
func (p *plugin) stop(sig syscall.Signal, d time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return time.Since(start)
	case <-time.After(d):
		p.t.Errorf("plugin did not exit within %s of %v; killing it; log:\n%s", d, sig, p.logTail())
		_ = p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start)
	}
}

// closeInput closes stdin (auditd stopping) and waits up to d for the exit.
func (p *plugin) closeInput(d time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Errorf("plugin did not exit within %s of EOF; log:\n%s", d, p.logTail())
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return time.Since(start)
}

func (p *plugin) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// scrape reads the plugin's /metrics.
func (p *plugin) scrape() (string, error) {
	return scrapeMetrics(p.listen)
}

func scrapeMetrics(listen string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + listen + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), nil
}

// metric sums the series of name whose labels contain every element of
// labels (e.g. `sink="kafka"`), from a Prometheus text exposition.
func metric(text, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		if sp < 0 {
			continue
		}
		key, val := l[:sp], l[sp+1:]
		n, lab, _ := strings.Cut(key, "{")
		if n != name {
			continue
		}
		ok := true
		for _, want := range labels {
			if !strings.Contains(lab, want) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			sum += v
		}
	}
	return sum
}

// value scrapes one metric sum; it fails the test when the plugin does not
// answer.
func (p *plugin) value(name string, labels ...string) float64 {
	p.t.Helper()
	text, err := p.scrape()
	if err != nil {
		p.t.Fatalf("scrape metrics: %v; log:\n%s", err, p.logTail())
	}
	return metric(text, name, labels...)
}

// waitMetric polls until cond holds for the metric or d passes.
func (p *plugin) waitMetric(d time.Duration, name string, labels []string, cond func(float64) bool) (float64, bool) {
	deadline := time.Now().Add(d)
	var v float64
	for {
		text, err := p.scrape()
		if err == nil {
			v = metric(text, name, labels...)
			if cond(v) {
				return v, true
			}
		}
		if time.Now().After(deadline) || p.done() {
			return v, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runReplay runs `audisp-enrich replay --config cfg files...` and returns
// its combined output and how long it took.
func runReplay(t testing.TB, cfgPath string, files ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(testsupport.PluginBinary(t), append([]string{"replay", "--config", cfgPath}, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	return string(out), time.Since(start)
}
