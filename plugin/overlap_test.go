package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestOverlappingStart: auditd may start a new plugin while the previous
// one is still shutting down. The new one waits for what the old one still
// holds (a network sink's disk buffer, the TCP status address) instead of
// exiting 1, and once the old one is gone it runs with its own listener
// (a unix socket the old one leaves in place: it removes only its own)
// and its own pid file. Each case has one of those resources, so that
// waiting for one does not hide the other.
func TestOverlappingStart(t *testing.T) {
	bin := testsupport.PluginBinary(t)
	for _, held := range []string{"spool", "tcp", "unix"} {
		t.Run(held, func(t *testing.T) {
			dir := t.TempDir()
			extra, listen := "", ""
			switch held {
			case "spool":
				extra = fmt.Sprintf("[[sink]]\nname = \"net\"\ntype = \"syslog\"\n[sink.syslog]\ntransport = \"tcp\"\naddress = \"127.0.0.1:%d\"\n", testsupport.FreePort(t, "tcp"))
			case "tcp":
				listen = fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))
			case "unix":
				listen = "unix:" + filepath.Join(dir, "metrics.sock")
			}
			cfg := filepath.Join(dir, "config.toml")
			writeFile(t, cfg, fmt.Sprintf(`user = "root"
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
`, dir, listen, filepath.Join(dir, "events.json"))+extra)
			pidFile := filepath.Join(dir, "audisp-enrich.pid")
			up := func(pid int) func() bool {
				return func() bool {
					if listen != "" {
						if _, err := scrapeURL(listen); err != nil {
							return false
						}
					}
					b, _ := os.ReadFile(pidFile)
					return string(b) == strconv.Itoa(pid)+"\n"
				}
			}

			old, oldIn, oldErr := runPlugin(t, bin, cfg)
			testsupport.WaitFor(t, 10*time.Second, "the first plugin", up(old.Process.Pid))
			next, nextIn, nextErr := runPlugin(t, bin, cfg)
			time.Sleep(300 * time.Millisecond) // the new one starts while the old one runs
			oldIn.Close()
			if err := old.Wait(); err != nil {
				t.Fatalf("the first plugin: %v\n%s", err, oldErr)
			}
			if !testsupport.Until(5*time.Second, up(next.Process.Pid)) {
				b, _ := os.ReadFile(pidFile)
				_, err := scrapeURL(listen)
				t.Fatalf("the second plugin is not up after the first stopped (pid file %q, listener: %v); it logged:\n%s", b, err, nextErr)
			}
			nextIn.Close()
			if err := next.Wait(); err != nil {
				t.Fatalf("the second plugin: %v\n%s", err, nextErr)
			}
			if strings.Contains(nextErr.String(), "level=ERROR") {
				t.Errorf("the second plugin logged errors:\n%s", nextErr)
			}
		})
	}
}
