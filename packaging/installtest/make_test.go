package installtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
