package sigma

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// countHits evaluates every rule of s on evs and logs the matches per
// rule; it returns the rules of level high or critical that fired.
func countHits(t *testing.T, s *Set, name string, evs []*audit.Event) []string {
	t.Helper()
	counts := map[*Rule]int{}
	examples := map[*Rule][]string{} // the first command lines a rule fired on
	for _, ev := range evs {
		for _, r := range s.match(ev, nil) {
			counts[r]++
			if len(examples[r]) < 2 {
				examples[r] = append(examples[r], strings.Join(audit.SummaryOf(ev).Args, " "))
			}
		}
	}
	t.Logf("%s: %d events", name, len(evs))
	var high []string
	for _, r := range s.Rules() {
		if n := counts[r]; n > 0 {
			t.Logf("  %6d %-8s %s %s (on %q)", n, r.Level, r.ID, r.Title, examples[r])
			if r.severity >= 3 {
				high = append(high, r.Title)
			}
		}
	}
	return high
}

// TestFalsePositives replays benign captures (plugin/testdata/capture.log
// and, when present and not -short, the corpus of make corpus) with every
// SigmaHQ Linux
// rule loaded and counts the matches per rule. The captures hold only
// benign activity, so no rule of level high or critical may fire.
func TestFalsePositives(t *testing.T) {
	s, err := Load(sharedRules(t))
	if err != nil {
		t.Fatal(err)
	}
	logs := []string{benchCorpus()}
	if c := "/var/tmp/audisp-enrich-corpus.log"; os.Getenv("AUDISP_ENRICH_CORPUS") == "" && !testing.Short() {
		if _, err := os.Stat(c); err == nil {
			logs = append(logs, c)
		}
	}
	for _, l := range logs {
		if high := countHits(t, s, l, readEvents(t, l)); len(high) > 0 {
			t.Errorf("%s: rules of level high or critical fired on benign activity: %v", l, high)
		}
	}
}

// TestAdminFalsePositives captures ordinary administration under a real
// auditd (execve of uid nobody only: git, a C compile, make, dpkg and
// apt-cache queries, systemctl status, tar, ps) and counts the matches
// per rule. No rule of level high or critical may fire.
func TestAdminFalsePositives(t *testing.T) {
	testsupport.SkipShort(t, "starts a real auditd (root, kernel audit)")
	s, err := Load(sharedRules(t))
	if err != nil {
		t.Fatal(err)
	}
	a := auditdtest.Start(t, auditdtest.Options{})
	work, err := os.MkdirTemp("/var/tmp", "sigmaadmin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chown(work, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "uid=65534", "-k", "sigmaadmin")
	time.Sleep(300 * time.Millisecond)
	script := `set -e
git init -q repo && cd repo
git config user.email a@example.org && git config user.name a
printf '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n' > hello.c
printf 'hello: hello.c\n\tcc -O2 -o hello hello.c\n' > Makefile
make -s && ./hello
git add -A && git commit -qm first && git log --oneline | head -1
tar czf ../repo.tgz . && tar tzf ../repo.tgz > /dev/null
dpkg -l bash > /dev/null && apt-cache policy bash > /dev/null
systemctl status --no-pager cron > /dev/null 2>&1 || true
ps aux > /dev/null && id && uname -r && ls -la > /dev/null
`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = work
	cmd.Env = []string{"HOME=" + work, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin script: %v\n%s", err, out)
	}
	var evs []*audit.Event
	testsupport.Until(10*time.Second, func() bool {
		evs = readEvents(t, a.LogFile)
		for _, ev := range evs {
			if s := audit.SummaryOf(ev); s.Exec && filepath.Base(s.Exe) == "ls" {
				return true
			}
		}
		return false
	})
	a.Stop()
	evs = readEvents(t, a.LogFile)
	execs := 0
	for _, ev := range evs {
		if audit.SummaryOf(ev).Exec {
			execs++
		}
	}
	if execs < 15 {
		t.Fatalf("captured %d execs, want the script's (at least 15)", execs)
	}
	if high := countHits(t, s, "administration", evs); len(high) > 0 {
		t.Errorf("rules of level high or critical fired on ordinary administration: %s", strings.Join(high, "; "))
	}
}
