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

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
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

// vtFallback is a pipeline whose VirusTotal enricher (answering from
// answers, no network) fell back: a reload to the settings "B" (state_dir
// under a regular file, a-file, so vt.db cannot be made) left it running
// the settings it started with, "A" (state_dir dir/vt-a). fix removes the
// cause, so that B can start; bDB is B's vt.db, made when B starts.
type vtFallback struct {
	t            *testing.T
	dir, answers string
	bDB, bDir    string
	p            *Pipeline
}

func newVTFallback(t *testing.T) *vtFallback {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	must(t, os.WriteFile(file, nil, 0o600))
	v := &vtFallback{t: t, dir: dir, answers: filepath.Join(dir, "answers.json"),
		bDir: filepath.Join(file, "state")}
	v.bDB = filepath.Join(v.bDir, virustotal.DBFile)
	must(t, os.WriteFile(v.answers, []byte("{}"), 0o600))
	var err error
	if v.p, err = NewPipeline(v.config(filepath.Join(dir, "vt-a"), ""), slog.New(slog.DiscardHandler), &metrics.Registry{}, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.p.Close(context.Background()) })
	a := v.p.enr.vt
	if err := v.p.Reload(v.config(v.bDir, "")); err != nil {
		t.Fatalf("reload to settings that cannot start: %v", err)
	}
	if v.p.enr.vt == nil || v.p.enr.vt == a {
		t.Fatalf("virustotal after a failed change: %p, before %p: want one with the previous settings", v.p.enr.vt, a)
	}
	return v
}

// config is the pipeline's config with VirusTotal's state_dir vtDir and
// sinks after the events sink.
func (v *vtFallback) config(vtDir, sinks string) *conf.Config {
	return parseConfig(v.t, fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.virustotal]
enabled = true
answers_file = %q
state_dir = %q
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %q
%s`, v.dir, v.answers, vtDir, filepath.Join(v.dir, "events.json"), sinks))
}

func (v *vtFallback) fix() {
	must(v.t, os.Remove(filepath.Dir(v.bDir)))
	must(v.t, os.MkdirAll(v.bDir, 0o700))
}

// TestReloadRetriesVTSettings: after new VirusTotal settings B could not
// start and the enricher fell back to the previous ones A, a SIGHUP with
// the same config B, once the cause is fixed, starts one with B (its
// vt.db appears); the next one keeps it. Before, Reload compared B with
// the config last loaded (B, "unchanged") and kept A until a restart.
func TestReloadRetriesVTSettings(t *testing.T) {
	v := newVTFallback(t)
	fallback := v.p.enr.vt
	v.fix()
	if err := v.p.Reload(v.config(v.bDir, "")); err != nil {
		t.Fatalf("reload to B once it can start: %v", err)
	}
	b := v.p.enr.vt
	if b == nil || b == fallback {
		t.Fatalf("virustotal after the fix: %p, fallback %p: want a new one with B", b, fallback)
	}
	if _, err := os.Stat(v.bDB); err != nil {
		t.Errorf("the enricher started after the fix does not run B: %v", err)
	}
	if err := v.p.Reload(v.config(v.bDir, "")); err != nil {
		t.Fatal(err)
	}
	if v.p.enr.vt != b {
		t.Error("a reload to the settings the enricher runs with replaced it")
	}
}

// TestReloadWithoutVT: when neither the new VirusTotal settings nor the
// previous ones could start (the answers file is gone), a SIGHUP with the
// same [enrich.virustotal] and a new sink succeeds and applies the sink;
// once the cause is fixed, the next one starts VirusTotal again. Before,
// the failure to build it failed the whole reload.
func TestReloadWithoutVT(t *testing.T) {
	v := newVTFallback(t)
	must(t, os.Remove(v.answers))
	if err := v.p.Reload(v.config(filepath.Join(v.dir, "vt-c"), "")); err != nil {
		t.Fatal(err)
	}
	if v.p.enr.vt != nil {
		t.Fatal("virustotal runs though neither settings could start")
	}
	extra := filepath.Join(v.dir, "extra.json")
	sink := fmt.Sprintf("[[sink]]\nname = \"extra\"\ntype = \"file\"\n[sink.file]\npath = %q\n", extra)
	if err := v.p.Reload(v.config(filepath.Join(v.dir, "vt-c"), sink)); err != nil {
		t.Fatalf("reload with unchanged [enrich.virustotal] that adds a sink: %v", err)
	}
	for _, l := range imaLines(1, "/usr/local/bin/one", strings.Repeat("1", 64)) {
		v.p.handle(l, inputPos{})
	}
	v.p.Idle()
	if !testsupport.Until(5*time.Second, func() bool {
		b, _ := os.ReadFile(extra)
		return strings.Contains(string(b), strings.Repeat("1", 64))
	}) {
		t.Fatal("the added sink got no document")
	}
	must(t, os.WriteFile(v.answers, []byte("{}"), 0o600))
	if err := v.p.Reload(v.config(filepath.Join(v.dir, "vt-c"), sink)); err != nil {
		t.Fatal(err)
	}
	if v.p.enr.vt == nil {
		t.Error("no virustotal after the cause was fixed")
	}
}
