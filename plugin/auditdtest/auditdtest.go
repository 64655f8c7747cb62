// Package auditdtest starts a real auditd for tests, safely.
//
// Only one auditd can own the kernel's audit connection, and go test runs
// packages in parallel, so every test that starts one holds an exclusive
// flock on LockPath for its whole run. The helper follows the project's
// rules for touching kernel audit: it starts auditd only when none runs,
// adds only the rules the test asks for and deletes exactly those, restores
// the enabled flag it found, and stops only the auditd it started, by PID.
package auditdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// LockPath is the lock file shared by every test that runs an auditd.
const LockPath = "/tmp/audisp-enrich-auditd.lock"

// PidFile is where auditd up to 4.1 writes its process id; PidFile42 is
// where auditd 4.2 and later write it.
const (
	PidFile   = "/run/auditd.pid"
	PidFile42 = "/run/audit/auditd.pid"
)

// Auditd is a running auditd started by a test.
type Auditd struct {
	Dir     string        // config dir (auditd.conf, plugins.d)
	LogFile string        // audit.log written by this auditd
	PID     int           // auditd's process id
	Stderr  *bytes.Buffer // what auditd printed while starting
	t       testing.TB
	rules   [][]string
	enabled string
	syslog  *msgLog  // what a chrooted auditd logged to its /dev/log
	pidFile []string // where this auditd writes its pid
	stopped bool
}

// Options configures Start.
type Options struct {
	// Conf holds extra or overriding auditd.conf settings.
	Conf map[string]string
	// Plugins maps a plugins.d file name to its content.
	Plugins map[string]string
	// PluginDir, when set, is used as plugin_dir instead of DIR/plugins.d.
	PluginDir string
	// Root, when set, is a root file system made by Chroot: auditd runs
	// chrooted there (in its own mount namespace, with /proc mounted),
	// against the host kernel. Dir and LogFile are host paths inside Root;
	// paths in Conf and Plugins are as seen inside Root (see TempDir).
	// PluginDir must be empty.
	Root string
}

// Available reports whether kernel audit is reachable (auditctl -s works).
func Available() error {
	if _, err := exec.LookPath("auditd"); err != nil {
		return fmt.Errorf("auditd not installed: %w", err)
	}
	out, err := exec.Command("auditctl", "-s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("auditctl -s: %v: %s", err, out)
	}
	return nil
}

// Lock takes the shared auditd lock for the rest of the test.
func Lock(t testing.TB) {
	t.Helper()
	t.Cleanup(flockFile(t, LockPath))
}

// Start locks, checks that no auditd runs, writes a config dir and starts
// `auditd -f -c DIR`. It skips the test only when kernel audit is
// unreachable. Cleanup deletes the rules added with AddRule, stops auditd
// by PID and restores the enabled flag.
func Start(t testing.TB, o Options) *Auditd {
	t.Helper()
	testsupport.SkipShort(t, "starts a real auditd (root, kernel audit)")
	if err := Available(); err != nil {
		t.Skipf("kernel audit unreachable, skipping real-auditd test: %v", err)
	}
	Lock(t)
	if out, _ := exec.Command("pgrep", "-x", "auditd").Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("an auditd not started by this test is running (pid %s); refusing to touch it", bytes.TrimSpace(out))
	}
	dir, inner := TempDir(t, o.Root)
	a := &Auditd{Dir: dir, LogFile: filepath.Join(dir, "audit.log"), t: t, enabled: EnabledFlag(t)}
	pdir := o.PluginDir
	if pdir == "" {
		pdir = filepath.Join(inner, "plugins.d")
		if err := os.MkdirAll(filepath.Join(dir, "plugins.d"), 0o750); err != nil {
			t.Fatal(err)
		}
	} else if o.Root != "" {
		t.Fatal("auditdtest: PluginDir with Root")
	}
	for name, content := range o.Plugins {
		if err := os.WriteFile(filepath.Join(o.Root+pdir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	conf := map[string]string{
		"local_events":            "yes",
		"write_logs":              "yes",
		"log_file":                filepath.Join(inner, "audit.log"),
		"log_group":               "root",
		"log_format":              "ENRICHED",
		"flush":                   "INCREMENTAL_ASYNC",
		"freq":                    "50",
		"max_log_file":            "64",
		"num_logs":                "2",
		"priority_boost":          "4",
		"name_format":             "NONE",
		"max_log_file_action":     "ROTATE",
		"space_left":              "75",
		"space_left_action":       "SYSLOG",
		"admin_space_left":        "50",
		"admin_space_left_action": "SYSLOG",
		"disk_full_action":        "SYSLOG",
		"disk_error_action":       "SYSLOG",
		"verify_email":            "no",
		"action_mail_acct":        "root",
		"use_libwrap":             "no",
		"tcp_client_max_idle":     "0",
		"enable_krb5":             "no",
		"distribute_network":      "no",
		"q_depth":                 "2000",
		"overflow_action":         "SYSLOG",
		"max_restarts":            "10",
		"plugin_dir":              pdir,
		"end_of_event_timeout":    "2",
	}
	for k, v := range o.Conf {
		conf[k] = v
	}
	var b strings.Builder
	for k, v := range conf {
		if v == "" {
			continue
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	// In -f mode auditd 3.x writes events to stderr instead of log_file, so
	// it runs as a daemon; its PID comes from its pid file.
	pidFiles := []string{o.Root + PidFile, o.Root + PidFile42}
	for _, f := range pidFiles {
		_ = os.Remove(f)
	}
	a.pidFile = pidFiles
	if o.Root != "" {
		a.syslog = catchSyslog(t, filepath.Join(o.Root, "dev", "log"))
	}
	a.Stderr = &bytes.Buffer{}
	cmd := exec.Command("auditd", "-c", dir)
	if o.Root != "" {
		// The mount namespace keeps /proc of the root off the host's
		// mount table; it ends with the last process in it.
		cmd = exec.Command("unshare", "--mount", "--propagation", "private", "chroot", o.Root,
			"/bin/sh", "-c", `mount -t proc proc /proc && exec /usr/sbin/auditd -c "$0"`, inner)
	}
	cmd.Stdout = a.Stderr
	cmd.Stderr = a.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("start auditd: %v: %s", err, a.Stderr)
	}
	t.Cleanup(a.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := readPid(pidFiles); pid > 0 {
			a.PID = pid
			if conf["local_events"] != "yes" || statusField("pid") == strconv.Itoa(pid) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("auditd did not start within 10s; output:\n%s%s", a.Stderr, a.syslog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if conf["local_events"] != "yes" {
		return a
	}
	if out, err := exec.Command("auditctl", "-e", "1").CombinedOutput(); err != nil {
		t.Fatalf("auditctl -e 1: %v: %s", err, out)
	}
	return a
}

// readPid returns the process id in the first of files that holds one, or 0.
func readPid(files []string) int {
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
	}
	return 0
}

// AddRule runs `auditctl ARGS...` (an -a or -w rule) and registers the
// matching delete (-a → -d, -w → -W) for cleanup.
func (a *Auditd) AddRule(args ...string) {
	a.t.Helper()
	if out, err := exec.Command("auditctl", args...).CombinedOutput(); err != nil {
		a.t.Fatalf("auditctl %v: %v: %s", args, err, out)
	}
	a.rules = append(a.rules, args)
}

// Stop deletes the added rules, stops auditd by PID (SIGTERM, then SIGKILL
// after 10 s), and restores the enabled flag. It is idempotent.
func (a *Auditd) Stop() {
	if a.stopped {
		return
	}
	a.stopped = true
	for i := len(a.rules) - 1; i >= 0; i-- {
		del := append([]string(nil), a.rules[i]...)
		switch del[0] {
		case "-a", "-A":
			del[0] = "-d"
		case "-w":
			del[0] = "-W"
		}
		if out, err := exec.Command("auditctl", del...).CombinedOutput(); err != nil {
			a.t.Errorf("deleting rule %v: %v: %s", del, err, out)
		}
	}
	a.rules = nil
	if a.PID == 0 {
		// Start failed after auditd forked: stop the one it started.
		a.PID = readPid(a.pidFile)
	}
	if a.PID > 0 {
		_ = syscall.Kill(a.PID, syscall.SIGTERM)
		if !testsupport.Until(10*time.Second, func() bool { return syscall.Kill(a.PID, 0) != nil }) {
			_ = syscall.Kill(a.PID, syscall.SIGKILL)
			testsupport.Until(5*time.Second, func() bool { return syscall.Kill(a.PID, 0) != nil })
		}
	}
	if a.enabled != "" {
		_ = exec.Command("auditctl", "-e", a.enabled).Run()
	}
}

// EnabledFlag returns the kernel's audit enabled flag ("0" or "1").
func EnabledFlag(t testing.TB) string {
	v := statusField("enabled")
	if v == "2" {
		t.Fatalf("kernel audit is immutable (enabled 2); refusing to run")
	}
	return v
}

func statusField(name string) string {
	out, err := exec.Command("auditctl", "-s").Output()
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}
