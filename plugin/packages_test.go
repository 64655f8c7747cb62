package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// TestReplayPackageTrust replays IMA measurements of real files of this
// machine through the whole pipeline with the package index on (limited to
// two coreutils binaries): ls's real digest is package; a copy of env
// under another name is relocated, with the hunting rule, tag and T1036.003;
// ls's digest on env's path is modified, with T1554. Replay builds the
// index before it judges, so no event says unindexed.
func TestReplayPackageTrust(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this machine:", err)
	}
	dir := t.TempDir()
	sum := func(p string) string {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		return hex.EncodeToString(h[:])
	}
	ls, env := sum("/usr/bin/ls"), sum("/usr/bin/env")
	copyDir := filepath.Join(dir, ".x")
	if err := os.Mkdir(copyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("/usr/bin/env")
	httpd := filepath.Join(copyDir, "httpd")
	if err := os.WriteFile(httpd, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	for i, m := range []struct{ file, hash string }{{"/usr/bin/ls", ls}, {httpd, env}, {"/usr/bin/env", ls}} {
		fmt.Fprintf(&log, `type=INTEGRITY_RULE msg=audit(1764900000.%03d:%d): file="%s" hash="sha256:%s" ppid=1 pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="bash" exe="/usr/bin/bash" res=1`+"\n",
			i, 100+i, m.file, m.hash, 4000+i)
	}
	in := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(in, log.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	cfg, err := conf.Parse("packages.toml", []byte(fmt.Sprintf(`
state_dir = %q
[log]
syslog = false
[enrich.proc]
enabled = false
[enrich.packages]
enabled = true
paths = ["/usr/bin/ls", "/usr/bin/env"]
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, out)))
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), []string{in}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	validateDocs(t, raw)
	type doc struct {
		Event   struct{ Serial int }
		Package struct {
			Status, Manager, Name string
			OriginalPath          string `json:"original_path"`
		}
		Tags   []string
		Hunt   []struct{ Rule string }
		Threat struct {
			Technique struct {
				ID           []string
				Subtechnique struct{ ID []string }
			}
		}
	}
	got := map[int]doc{}
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var d doc
		if err := json.Unmarshal(l, &d); err != nil {
			t.Fatal(err)
		}
		got[d.Event.Serial] = d
	}
	checks := []struct {
		serial         int
		status, orig   string
		tag, rule, tid string
	}{
		{100, "package", "", "", "", ""},
		{101, "relocated", "/usr/bin/env", "package:relocated", "package_file_relocated", "T1036.003"},
		{102, "modified", "", "package:modified", "package_file_modified", "T1554"},
	}
	for _, c := range checks {
		d, ok := got[c.serial]
		if !ok {
			t.Fatalf("no document for serial %d in\n%s", c.serial, raw)
		}
		p := d.Package
		if p.Status != c.status || p.Manager != "dpkg" || p.Name != "coreutils" || p.OriginalPath != c.orig {
			t.Errorf("serial %d: package %+v, want %s (original %q) of coreutils", c.serial, p, c.status, c.orig)
		}
		if c.tag == "" {
			if slices.ContainsFunc(d.Tags, func(s string) bool { return strings.HasPrefix(s, "package:") }) {
				t.Errorf("serial %d: tags %v", c.serial, d.Tags)
			}
			continue
		}
		ids := append(d.Threat.Technique.ID, d.Threat.Technique.Subtechnique.ID...)
		if !slices.Contains(d.Tags, c.tag) || !slices.Contains(d.Tags, "hunt:"+c.rule) || !slices.Contains(ids, c.tid) {
			t.Errorf("serial %d: tags %v, techniques %v; want %s, hunt:%s, %s", c.serial, d.Tags, ids, c.tag, c.rule, c.tid)
		}
	}
}

// BenchmarkPackageShare measures how many of the distinct executables run
// in the bundled capture (and in the generated corpus, when
// AUDISP_ENRICH_CORPUS names it), and of the files in /usr/bin and
// /usr/sbin of this machine, the package index vouches for, and so need no
// VirusTotal lookup. The captures hold no IMA records (the host kernel has
// no IMA), so each distinct file of their execve events (exe= and PATH
// names) that still exists is hashed (SHA-256) on this machine, where the
// captures were made, and judged like an INTEGRITY_RULE hash. Run it once:
//
//	go test -run '^$' -bench PackageShare -benchtime 1x ./plugin/
func BenchmarkPackageShare(b *testing.B) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		b.Skip("no dpkg database on this machine:", err)
	}
	logs := map[string]string{"capture": filepath.Join("testdata", "capture.log"), "usr-bin-sbin": ""}
	if c := os.Getenv("AUDISP_ENRICH_CORPUS"); c != "" {
		logs["corpus"] = c
	}
	for b.Loop() {
		for name, path := range logs {
			exes := machinePaths(b, "/usr/bin", "/usr/sbin")
			if path != "" {
				exes = execPaths(b, path)
			}
			cfg := packages.DefaultConfig()
			cfg.Enabled, cfg.StateDir, cfg.Paths = true, b.TempDir(), exes
			e := packages.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &metrics.Registry{})
			if err := e.Index().Wait(context.Background(), nil); err != nil {
				b.Fatal(err)
			}
			status := map[string]int{}
			seen := map[string]bool{}
			for _, p := range exes {
				data, err := os.ReadFile(p)
				if err != nil {
					status["gone"]++
					continue
				}
				h := sha256.Sum256(data)
				hx := hex.EncodeToString(h[:])
				if seen[hx] {
					continue
				}
				seen[hx] = true
				ev := &audit.Event{Enrichment: audit.Enrichment{Hashes: []audit.FileHash{{Path: p, Algo: "sha256", Hex: hx}}}}
				if err := e.Enrich(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
				status[ev.Package.Status]++
			}
			e.Close()
			b.ReportMetric(float64(len(exes)), name+"-exe-paths")
			b.ReportMetric(float64(len(seen)), name+"-distinct-hashes")
			b.ReportMetric(float64(status[packages.StatusPackage])/float64(len(seen)), name+"-package-share")
			b.Logf("%s: %d distinct exe paths, %d distinct hashes, by status %v", name, len(exes), len(seen), status)
		}
	}
}

// execPaths returns the distinct files of the successful execve events of
// an audit log: the SYSCALL exe= and the PATH names (the program and its
// loader, which IMA measures too).
func execPaths(b *testing.B, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var p audit.Parser
	execs := map[uint32]bool{}
	names := map[uint32][]string{}
	for _, l := range strings.Split(string(data), "\n") {
		r, err := p.Parse(l)
		if err != nil {
			continue
		}
		switch r.Type {
		case "SYSCALL":
			sc, _ := r.Get("syscall")
			ok, _ := r.Get("success")
			exe, _ := r.Get("exe")
			if (sc == "59" || sc == "322") && ok == "yes" {
				execs[r.Serial] = true
				names[r.Serial] = append(names[r.Serial], exe)
			}
		case "PATH":
			n, _ := r.Get("name")
			names[r.Serial] = append(names[r.Serial], n)
		}
	}
	set := map[string]bool{}
	for serial := range execs {
		for _, n := range names[serial] {
			// The kernel measures the file a symlink points to.
			if real, err := filepath.EvalSymlinks(n); err == nil && strings.HasPrefix(n, "/") {
				set[real] = true
			} else if strings.HasPrefix(n, "/") {
				set[filepath.Clean(n)] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// machinePaths returns the files directly in dirs, symlinks resolved.
func machinePaths(b *testing.B, dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		es, err := os.ReadDir(d)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range es {
			if e.Type().IsRegular() {
				out = append(out, filepath.Join(d, e.Name()))
			} else if real, err := filepath.EvalSymlinks(filepath.Join(d, e.Name())); err == nil {
				out = append(out, real) // what IMA measures for a symlink
			}
		}
	}
	return out
}

// TestStatusReportPackages checks the status report's package index line
// for a pipeline whose index (one coreutils binary of this machine) is
// built.
func TestStatusReportPackages(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this machine:", err)
	}
	dir := t.TempDir()
	cfg := lsConfig(t, dir, "")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := &metrics.Registry{}
	p, err := NewPipeline(cfg, log, reg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.enr.waitPackages(context.Background(), log, nil); err != nil {
		t.Fatal(err)
	}
	newStatus(p, NewInputStats(reg), cfg, log).report("periodic")
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="packages status"`) {
			line = l
		}
	}
	for _, want := range []string{"report=periodic", "files=1 ", "hashed=1 ", "pending=0 ", "modified=0 ", "last_refresh=20"} {
		if !strings.Contains(line, want) {
			t.Fatalf("want %q in the packages status line %q\nlogs:\n%s", want, line, logs.String())
		}
	}
}

// TestReloadKeepsPackageIndex: a reload (SIGHUP) that keeps
// [enrich.packages] keeps the running enricher and its index; one that
// changes it answers from the running index until the new one is
// complete (packages.TestTakeOverUntilComplete), so ls's real digest is package throughout, never unindexed
// (found by review: every SIGHUP started the index from scratch).
func TestReloadKeepsPackageIndex(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this machine:", err)
	}
	data, err := os.ReadFile("/usr/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ls := hex.EncodeToString(sum[:])
	dir := t.TempDir()
	config := func(extra string) *conf.Config { return lsConfig(t, dir, extra) }
	p, err := NewPipeline(config(""), slog.New(slog.DiscardHandler), &metrics.Registry{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.enr.packages.Index().Wait(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	judge := func(when string) {
		t.Helper()
		ev := &audit.Event{}
		ev.Hashes = []audit.FileHash{{Path: "/usr/bin/ls", Algo: "sha256", Hex: ls}}
		if err := p.enr.packages.Enrich(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if ev.Package == nil || ev.Package.Status != packages.StatusPackage {
			t.Fatalf("%s: ls's digest judged %+v, want package", when, ev.Package)
		}
	}
	judge("before the reloads")
	running := p.enr.packages
	if err := p.Reload(config("")); err != nil {
		t.Fatal(err)
	}
	if p.enr.packages != running {
		t.Error("a reload with the same [enrich.packages] replaced the package enricher")
	}
	judge("after a reload with the same settings")
	if err := p.Reload(config("rate_mb = 5")); err != nil {
		t.Fatal(err)
	}
	if p.enr.packages == running {
		t.Fatal("a reload with other [enrich.packages] settings kept the package enricher")
	}
	judge("right after a reload with other settings")
	if err := p.enr.packages.Index().Wait(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	judge("once the new index is complete")
}

// lsConfig is a config with state and output in dir and the package
// index on for /usr/bin/ls only; extra is added to [enrich.packages].
func lsConfig(t *testing.T, dir, extra string) *conf.Config {
	return parseConfig(t, fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.proc]
enabled = false
[enrich.packages]
enabled = true
paths = ["/usr/bin/ls"]
%s
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, extra, filepath.Join(dir, "out.jsonl")))
}
