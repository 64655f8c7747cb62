package plugin_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestPackagesStatusCommand runs "audisp-enrich packages status" before and
// after a replay built the index (two coreutils binaries of this machine's
// dpkg database): first both files are pending and nothing was refreshed,
// then both are hashed and the persisted index has a refresh time.
func TestPackagesStatusCommand(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this machine:", err)
	}
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.packages]
enabled = true
paths = ["/usr/bin/ls", "/usr/bin/env"]
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, filepath.Join(dir, "out.jsonl")))
	status := func() string {
		t.Helper()
		out, err := exec.Command(bin, "packages", "status", "--config", cfg).CombinedOutput()
		if err != nil {
			t.Fatalf("packages status: %v\n%s", err, out)
		}
		return string(out)
	}
	before := status()
	for _, want := range []string{"manager:       dpkg", "indexed files: 2 ", "pending:       2 ", "last refresh:  never"} {
		if !strings.Contains(before, want) {
			t.Fatalf("before the index is built, want %q in\n%s", want, before)
		}
	}
	empty := filepath.Join(dir, "empty.log")
	writeFile(t, empty, "")
	if out, err := exec.Command(bin, "replay", "--config", cfg, empty).CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	after := status()
	for _, want := range []string{"hashed:        2 files", "pending:       0 ", "modified:      0 ", "complete:      true"} {
		if !strings.Contains(after, want) {
			t.Fatalf("after replay built the index, want %q in\n%s", want, after)
		}
	}
	if strings.Contains(after, "last refresh:  never") {
		t.Fatalf("no refresh time after the index was written:\n%s", after)
	}
	out, err := exec.Command(bin, "packages", "list").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "Usage: audisp-enrich packages status") {
		t.Fatalf("packages list: %v, want a usage error (exit status 2)\n%s", err, out)
	}
}
