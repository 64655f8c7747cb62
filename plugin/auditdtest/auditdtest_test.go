package auditdtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestStartLogsScopedRule proves the helper drives a real auditd: a rule
// scoped to a temp dir produces a logged event with our key, and cleanup
// leaves no rule behind.
func TestStartLogsScopedRule(t *testing.T) {
	a := Start(t, Options{})
	dir := t.TempDir()
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+dir, "-k", "auditdtest_self")
	bin := dir + "/true"
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(bin).Run(); err != nil {
		t.Fatal(err)
	}
	ok := testsupport.Until(5*time.Second, func() bool {
		b, _ := os.ReadFile(a.LogFile)
		return strings.Contains(string(b), `key="auditdtest_self"`)
	})
	if !ok {
		b, _ := os.ReadFile(a.LogFile)
		t.Fatalf("no event with our key in %s:\n%s", a.LogFile, b)
	}
	a.Stop()
	out, _ := exec.Command("auditctl", "-l").Output()
	if strings.Contains(string(out), "auditdtest_self") {
		t.Fatalf("rule left behind: %s", out)
	}
}
