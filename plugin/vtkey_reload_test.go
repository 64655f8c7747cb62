package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// imaLines is one IMA-measured exec of file with the sha256 hash, as
// auditd delivers it (INTEGRITY_RULE, SYSCALL, EOE).
func imaLines(serial int, file, hash string) []string {
	stamp := fmt.Sprintf("msg=audit(1764000000.%03d:%d):", serial%1000, serial)
	return []string{
		fmt.Sprintf(`type=INTEGRITY_RULE %s file="%s" hash="sha256:%s" ppid=1 pid=%d auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="x" exe="/usr/bin/bash"`, stamp, file, hash, 4000+serial),
		fmt.Sprintf(`type=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=%d auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="x" exe="%s" key=(null)`, stamp, 4000+serial, file),
		fmt.Sprintf(`type=EOE %s`, stamp),
	}
}

// TestReloadReadsRejectedKeyAgain: VirusTotal rejects the key from
// api_key_file (401), lookups stop; the key file is fixed and the same
// config reloaded (SIGHUP): the reload replaces the disabled enricher,
// which reads the file again, and lookups go on with the new key. Before,
// the unchanged config kept the disabled enricher.
func TestReloadReadsRejectedKeyAgain(t *testing.T) {
	good, bad := strings.Repeat("a1", 32), strings.Repeat("b2", 32)
	fake := vtfake.New(t, good)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "vt.key")
	must(t, os.WriteFile(keyFile, []byte(bad+"\n"), 0o600))
	text := fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.virustotal]
enabled = true
api_key_file = %q
host = %q
state_dir = %q
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, keyFile, fake.URL(), dir, filepath.Join(dir, "events.json"))
	p, err := NewPipeline(parseConfig(t, text), slog.New(slog.DiscardHandler), &metrics.Registry{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for _, l := range imaLines(1, "/usr/local/bin/one", strings.Repeat("1", 64)) {
		p.handle(l, inputPos{})
	}
	p.Idle()
	fake.WaitRequests(t, 1)
	if !testsupport.Until(5*time.Second, func() bool { return p.enr.vt.Disabled() }) {
		t.Fatal("the rejected key did not disable lookups")
	}
	must(t, os.WriteFile(keyFile, []byte(good+"\n"), 0o600))
	if err := p.Reload(parseConfig(t, text)); err != nil {
		t.Fatal(err)
	}
	for _, l := range imaLines(2, "/usr/local/bin/two", strings.Repeat("2", 64)) {
		p.handle(l, inputPos{})
	}
	p.Idle()
	if !testsupport.Until(5*time.Second, func() bool { return slices.Contains(fake.APIKeys(), good) }) {
		t.Fatalf("no lookup with the fixed key after the reload; keys sent: %d", len(fake.APIKeys()))
	}
	if p.enr.vt == nil || p.enr.vt.Disabled() {
		t.Error("lookups still disabled after the reload")
	}
}
