package plugin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestSIGHUPStorm: 50 SIGHUPs while the capture streams in, each one
// reloading a config that changes a network sink (its buffer is handed
// over) and adds or removes a file sink. Nothing is lost, nothing is
// written twice, the plugin does not panic, and for the network sink
// published = acked + queued + dropped holds at the end while
// sink_acked_total never falls between scrapes.
func TestSIGHUPStorm(t *testing.T) {
	testsupport.SkipShort(t, "50 reloads while the capture streams through the plugin binary; long")
	lines := captureLines(t)
	want := expectedEvents(t)
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	listen := fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))
	out := filepath.Join(dir, "events.json")
	cfgPath := filepath.Join(dir, "config.toml")
	config := func(i int) string {
		c := fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[status]
interval = "0s"
listen = %q
[[sink]]
name = "events"
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
app_name = "storm%d"
`, dir, listen, out, udp.LocalAddr().String(), i%2)
		if i%2 == 1 {
			c += fmt.Sprintf("[[sink]]\nname = \"extra\"\ntype = \"file\"\n[sink.file]\npath = %q\n", filepath.Join(dir, "extra.json"))
		}
		return c
	}
	writeFile(t, cfgPath, config(0))
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Env = []string{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testsupport.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !testsupport.Until(5*time.Second, func() bool { _, err := scrapeURL(listen); return err == nil }) {
		t.Fatalf("no /metrics; stderr:\n%s", stderr.String())
	}

	const hups = 50
	chunk := (len(lines) + hups - 1) / hups
	var lastAcked float64
	for i := range hups {
		from, to := min(i*chunk, len(lines)), min((i+1)*chunk, len(lines))
		if _, err := io.WriteString(stdin, strings.Join(lines[from:to], "\n")+"\n"); err != nil {
			t.Fatalf("write: %v; stderr:\n%s", err, stderr.String())
		}
		replaceFile(t, cfgPath, config(i+1))
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if i%10 == 9 {
			s, err := scrapeURL(listen)
			if err != nil {
				t.Fatalf("scrape: %v; stderr:\n%s", err, stderr.String())
			}
			acked := parseProm(t, s).must(t, "audisp_enrich_sink_acked_total", "sink", "udp")
			if acked < lastAcked {
				t.Errorf("sink_acked_total fell from %g to %g during the storm", lastAcked, acked)
			}
			lastAcked = acked
		}
	}
	// Wait until every event reached the file and the network sink's
	// buffer is empty, then check the books.
	var p *promText
	if !testsupport.Until(15*time.Second, func() bool {
		s, err := scrapeURL(listen)
		if err != nil {
			return false
		}
		p = parseProm(t, s)
		q, _ := p.get("audisp_enrich_sink_queued", "sink", "udp")
		return q == 0 && countLines(t, out) >= want-1 // the last event may wait for its end
	}) {
		t.Fatalf("the sinks did not catch up; stderr:\n%s", stderr.String())
	}
	published := p.must(t, "audisp_enrich_sink_published_total", "sink", "udp")
	acked := p.must(t, "audisp_enrich_sink_acked_total", "sink", "udp")
	queued := p.must(t, "audisp_enrich_sink_queued", "sink", "udp")
	dropped := p.sum("audisp_enrich_sink_dropped_total")
	if published != acked+queued+dropped || published == 0 {
		t.Errorf("udp sink: published %g != acked %g + queued %g + dropped %g", published, acked, queued, dropped)
	}
	if acked < lastAcked {
		t.Errorf("sink_acked_total fell from %g to %g", lastAcked, acked)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "panic") {
		t.Fatalf("panic in stderr:\n%s", stderr.String())
	}
	ids := map[string]int{}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for _, d := range docs {
		var doc struct {
			Kind  string `json:"kind"`
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(d), &doc); err != nil {
			t.Fatal(err)
		}
		ids[doc.Kind+" "+doc.Event.ID]++
	}
	if len(docs) != want {
		t.Errorf("%d documents in the file sink, want %d (as replay)", len(docs), want)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("%s written %d times", id, n)
		}
	}
	reloads := strings.Count(stderr.String(), "config reloaded")
	if reloads == 0 {
		t.Errorf("no reload took place; stderr:\n%s", stderr.String())
	}
	t.Logf("%d SIGHUPs sent, %d reloads done, %d documents, udp: published %g acked %g dropped %g", hups, reloads, len(docs), published, acked, dropped)
}
