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
