package installtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestMakeHelpListsEveryTarget: every phony target of the Makefile has a
// "## description" and `make help` prints it, names with digits
// (bench-e2e) included.
func TestMakeHelpListsEveryTarget(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("make not installed: %v", err)
	}
	root := repoRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var phony []string
	for _, m := range regexp.MustCompile(`(?m)^\.PHONY:(.*)$`).FindAllStringSubmatch(string(mk), -1) {
		phony = append(phony, strings.Fields(m[1])...)
	}
	if len(phony) < 10 {
		t.Fatalf("only %d .PHONY targets found: %v", len(phony), phony)
	}
	cmd := exec.Command("make", "--no-print-directory", "help")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make help: %v", err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			listed[f[0]] = true
		}
	}
	for _, target := range phony {
		if !listed[target] {
			t.Errorf("make help does not list %q (a .PHONY target needs a `## description` on its rule line)", target)
		}
	}
	for _, want := range []string{"check", "test", "bench-e2e", "tidy-check"} {
		if !listed[want] {
			t.Errorf("make help does not list %q", want)
		}
	}
}

// TestCheckPkgVersion: `make package` refuses a version the changelogs and
// man pages do not carry (its first prerequisite, check-pkg-version), so a
// package whose changelog and --version disagree with its metadata cannot
// be built; the defaults pass.
func TestCheckPkgVersion(t *testing.T) {
	requireTool(t, "make", "make")
	root := repoRoot(t)
	run(t, "make", "-C", root, "--no-print-directory", "check-pkg-version")
	for _, c := range []struct{ arg, want string }{
		{"PKG_VERSION=0.1.1", "package 0.1.1-1: packaging/changelog starts at 0.1.0-1: add an entry for 0.1.1-1"},
		{"PKG_RELEASE=2", "package 0.1.0-2: packaging/changelog starts at 0.1.0-1: add an entry for 0.1.0-2"},
	} {
		out, err := exec.Command("make", "-C", root, "--no-print-directory", "package", c.arg).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("make package %s: err %v, output lacks %q:\n%s", c.arg, err, c.want, out)
		}
	}
}

// TestManPagesCiteShippedFiles: every /usr/share/doc/audisp-enrich path a
// man page cites is in both packages (the deb and the rpm), with the
// content of the docs/ file it is made from, and no man page cites the
// source tree's docs/ (the packages do not ship the source).
func TestManPagesCiteShippedFiles(t *testing.T) {
	testsupport.SkipShort(t, "builds the packages")
	requireTool(t, "dpkg-deb", "dpkg")
	requireTool(t, "rpm", "rpm")
	pk := buildPackages(t)
	debFiles := map[string]bool{}
	out, err := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -t`, "sh", pk.deb).Output()
	if err != nil {
		t.Fatalf("listing %s: %v", pk.deb, err)
	}
	for _, l := range strings.Fields(string(out)) {
		debFiles[strings.TrimPrefix(l, ".")] = true
	}
	rpmFiles := map[string]bool{}
	for _, l := range strings.Fields(run(t, "rpm", "-qlp", pk.rpm)) {
		rpmFiles[l] = true
	}
	cite := regexp.MustCompile(`/usr/share/doc/audisp\\-enrich/([A-Za-z0-9_.-]+)`)
	n := 0
	for _, man := range []string{"audisp-enrich.8", "audisp-enrich.conf.5"} {
		b, err := os.ReadFile(filepath.Join(pk.root, "packaging", "man", man))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "docs/") {
			t.Errorf("%s cites docs/ of the source tree", man)
		}
		for _, m := range cite.FindAllStringSubmatch(string(b), -1) {
			n++
			p := "/usr/share/doc/audisp-enrich/" + m[1]
			if !debFiles[p] || !rpmFiles[p] {
				t.Errorf("%s cites %s: in the deb %v, in the rpm %v", man, p, debFiles[p], rpmFiles[p])
			}
			src, err := os.ReadFile(filepath.Join(pk.root, "docs", strings.TrimSuffix(m[1], ".gz")))
			if err != nil || !bytes.Equal(gunzip(t, filepath.Join(pk.root, "build", "pkg", m[1])), src) {
				t.Errorf("build/pkg/%s is not docs/%s gzipped (err %v)", m[1], strings.TrimSuffix(m[1], ".gz"), err)
			}
		}
	}
	if n < 3 {
		t.Errorf("only %d /usr/share/doc/audisp-enrich citations found in the man pages", n)
	}
}
