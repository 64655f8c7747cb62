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
	checkScopedRule(t, a, "auditdtest_self")
}

// TestChrootAuditd4 runs Debian's auditd 4.x from a debootstrap root
// against the host kernel: the scoped rule's event reaches its log.
func TestChrootAuditd4(t *testing.T) {
	testsupport.SkipShort(t, "makes or reuses a debootstrap root per suite")
	for _, s := range Suites4 {
		t.Run(s.Name, func(t *testing.T) {
			if err := Available(); err != nil {
				t.Skipf("kernel audit unreachable: %v", err)
			}
			a := Start(t, Options{Root: Chroot(t, s)})
			log := checkScopedRule(t, a, "auditdtest_chroot")
			if !strings.Contains(log, "ver="+s.Auditd) {
				t.Errorf("DAEMON_START of %s does not name ver=%s:\n%.600s", a.LogFile, s.Auditd, log)
			}
		})
	}
}

// checkScopedRule adds an execve rule scoped to a temp dir with key, runs a
// program there, waits for the event in a's log, stops a (before the
// directory goes: the kernel drops a dir= rule with its directory) and
// checks that no rule is left. It returns the log.
func checkScopedRule(t *testing.T, a *Auditd, key string) string {
	t.Helper()
	dir := t.TempDir()
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+dir, "-k", key)
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
		return strings.Contains(string(b), `key="`+key+`"`)
	})
	b, _ := os.ReadFile(a.LogFile)
	if !ok {
		t.Fatalf("no event with our key in %s:\n%s", a.LogFile, b)
	}
	a.Stop()
	out, _ := exec.Command("auditctl", "-l").Output()
	if strings.Contains(string(out), key) {
		t.Fatalf("rule left behind: %s", out)
	}
	return string(b)
}
