package packages

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// nfpm returns the command that runs the Makefile's pinned nfpm:
// build/tools/nfpm when make built it, else "go run" of the same version
// (through the build cache, so tests running at the same time as make do
// not write the same file).
func nfpm(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if bin := filepath.Join(root, "build/tools/nfpm"); fileExists(bin) {
		return exec.Command(bin, args...)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^NFPM_VERSION := (\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no NFPM_VERSION in the Makefile")
	}
	cmd := exec.Command("go", append([]string{"run", "github.com/goreleaser/nfpm/v2/cmd/nfpm@" + string(m[1])}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestRPMDatabase builds a real .rpm with nfpm holding two real binaries
// and a data file, installs it with rpm --root into a scratch sqlite rpm
// database, and points the enricher at that root: package for the
// binaries (SHA-256 and SHA-1), relocated for a copy of one under another
// name, modified after an installed file is changed, unowned for a file
// of no package, unindexed for the data file (owned, not hashed).
func TestRPMDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nfpm and an rpm (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("rpm --root installs need root")
	}
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm is not installed (Debian package rpm)")
	}
	work := t.TempDir()
	tool, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	tool = append(tool, "audisp-enrich rpm test\n"...) // content of its own
	env, err := os.ReadFile("/usr/bin/env")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tool": tool, "env": env, "readme": []byte("read me\n")} {
		if err := os.WriteFile(filepath.Join(work, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`name: pkgtrust-scratch
arch: amd64
platform: linux
version: 1.2.3
release: 4
maintainer: audisp-enrich tests <root@localhost>
description: scratch package of the audisp-enrich package index tests
license: MIT
contents:
  - src: %[1]s/tool
    dst: /usr/bin/pkgtrust-tool
    file_info: {mode: 0755}
  - src: %[1]s/env
    dst: /usr/libexec/pkgtrust/env
    file_info: {mode: 0755}
  - src: %[1]s/readme
    dst: /usr/share/doc/pkgtrust/readme
    file_info: {mode: 0644}
`, work)
	if err := os.WriteFile(filepath.Join(work, "nfpm.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	rpmFile := filepath.Join(work, "pkgtrust.rpm")
	if out, err := nfpm(t, "package", "--config", filepath.Join(work, "nfpm.yaml"),
		"--packager", "rpm", "--target", rpmFile).CombinedOutput(); err != nil {
		t.Fatalf("nfpm: %v\n%s", err, out)
	}
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts",
		rpmFile).CombinedOutput(); err != nil {
		t.Fatalf("rpm -i: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/rpm/rpmdb.sqlite")); err != nil {
		t.Fatalf("no sqlite rpm database: %v", err)
	}

	cfg := testConfig(t)
	cfg.Root = root // manager auto: no dpkg status there, so rpm
	cfg.Refresh = time.Hour
	e := openEnricher(t, cfg)
	if st := e.Index().Stats(); st.Manager != "rpm" || st.Files != 2 || st.Owned != 1 || st.Modified != 0 {
		t.Fatalf("stats %+v, want rpm, 2 indexed files, 1 other, none modified", st)
	}
	t256, t1 := fileSHA(t, filepath.Join(root, "usr/bin/pkgtrust-tool"))
	ev := judge(t, e, "/usr/bin/pkgtrust-tool", "sha256", t256)
	wantPackage(t, ev, StatusPackage, "pkgtrust-scratch", "")
	if ev.Package.Version != "1.2.3-4" || ev.Package.Manager != "rpm" {
		t.Fatalf("package %+v, want version 1.2.3-4 from rpm", *ev.Package)
	}
	wantPackage(t, judge(t, e, "/usr/bin/pkgtrust-tool", "sha1", t1), StatusPackage, "pkgtrust-scratch", "")
	e256, _ := fileSHA(t, "/usr/bin/env")
	wantPackage(t, judge(t, e, "/dev/shm/kworkerds", "sha256", e256), StatusRelocated, "pkgtrust-scratch", "/usr/libexec/pkgtrust/env")
	r256, _ := fileSHA(t, filepath.Join(root, "usr/share/doc/pkgtrust/readme"))
	wantPackage(t, judge(t, e, "/usr/share/doc/pkgtrust/readme", "sha256", r256), StatusUnindexed, "", "")
	wantPackage(t, judge(t, e, "/usr/local/bin/mine", "sha256", r256), StatusUnowned, "", "")

	// Change an installed file behind rpm's back.
	bin := filepath.Join(root, "usr/bin/pkgtrust-tool")
	if err := os.WriteFile(bin, append(tool, "trojan\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	m256, _ := fileSHA(t, bin)
	wantPackage(t, judge(t, e, "/usr/bin/pkgtrust-tool", "sha256", m256), StatusModified, "pkgtrust-scratch", "")
	deadline := time.Now().Add(time.Minute)
	for e.Index().Stats().Modified != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("refresh did not mark the file modified: %+v", e.Index().Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantPackage(t, judge(t, e, "/usr/bin/pkgtrust-tool", "sha256", m256), StatusModified, "pkgtrust-scratch", "")
}
