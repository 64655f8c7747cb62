package plugin_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestServiceUserOutputDirs runs the plugin as root with user = "nobody"
// and output files in directories that do not exist yet. The plugin makes
// them before it drops privileges and gives them to the service user, so
// the file sink (opened at its first write, as nobody) writes every event,
// and the parse-error log is created again after log rotation (SIGHUP). A
// directory that existed keeps its owner: a file sink there that nobody may
// not write to drops its documents with one error logged, not one per
// flush, and says when it writes again.
func TestServiceUserOutputDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the plugin as another user")
	}
	const nobody = 65534
	dir := t.TempDir()
	// The service user must reach its directories.
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	admin := filepath.Join(dir, "admin") // root's: nobody cannot create files here
	if err := os.Mkdir(admin, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "logs", "audisp", "events.json")
	rejected := filepath.Join(dir, "errors", "rejected.log")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "nobody"
state_dir = %q
[log]
syslog = false
parse_errors = %q
[status]
interval = "0s"
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %q
[[sink]]
name = "locked"
type = "file"
[sink.file]
path = %q
`, filepath.Join(dir, "state"), rejected, out, filepath.Join(admin, "events.json")))
	if err := os.Chmod(cfg, 0o644); err != nil { // the service user reads it on SIGHUP
		t.Fatal(err)
	}
	lines := captureLines(t)
	want := expectedEvents(t)
	cmd, stdin, stderr := runPlugin(t, testsupport.PluginBinary(t), cfg)

	// The events come in four parts, a few flushes apart, so the locked
	// sink fails on several flushes.
	part := (len(lines) + 3) / 4
	for i := 0; i < len(lines); i += part {
		if _, err := io.WriteString(stdin, strings.Join(lines[i:min(i+part, len(lines))], "\n")+"\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if _, err := io.WriteString(stdin, "not an audit record (before the rotation)\n"); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, 10*time.Second, "the first rejected line in "+rejected, func() bool {
		b, _ := os.ReadFile(rejected)
		return strings.Contains(string(b), "before the rotation")
	})
	if err := os.Rename(rejected, rejected+".1"); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	if !testsupport.Until(10*time.Second, func() bool { return strings.Contains(stderr.String(), "SIGHUP: config reloaded") }) {
		t.Fatalf("no reload:\n%s", stderr)
	}
	if _, err := io.WriteString(stdin, "not an audit record (after the rotation)\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("plugin: %v\n%s", err, stderr)
	}
	logged := stderr.String()
	if !strings.Contains(logged, `msg="dropped privileges" user=nobody`) {
		t.Fatalf("the plugin did not drop to nobody:\n%s", logged)
	}

	if got := countLines(t, out); got != want {
		t.Errorf("%s has %d events, want %d (as replay)", out, got, want)
	}
	if b, _ := os.ReadFile(rejected); !strings.Contains(string(b), "after the rotation") {
		t.Errorf("the parse-error log was not created again after the rotation: %q\n%s", b, logged)
	}
	for _, d := range []string{"logs", "logs/audisp", "errors"} {
		if st := stat(t, filepath.Join(dir, d)); st.Uid != nobody || st.Gid != nobody {
			t.Errorf("%s: uid %d gid %d, want the service user's", d, st.Uid, st.Gid)
		}
	}
	for _, d := range []string{dir, admin} {
		if st := stat(t, d); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s existed and was given away: uid %d gid %d", d, st.Uid, st.Gid)
		}
	}

	var failures []string
	for _, l := range strings.Split(logged, "\n") {
		if strings.Contains(l, "sink=locked") {
			failures = append(failures, l)
		}
	}
	if len(failures) != 1 || !strings.Contains(failures[0], "level=ERROR") || !strings.Contains(failures[0], "permission denied") {
		t.Errorf("the locked sink's failure was logged %d times, want once, as an error with its cause:\n%s", len(failures), strings.Join(failures, "\n"))
	}
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}
