package plugin

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
)

// TestRemoveOwnPidFile: at exit the plugin removes the pid file only while
// it names this process; a newer plugin's file (auditd restarted the plugin
// and the new one started before the old one finished) stays.
func TestRemoveOwnPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), PidFileName)
	if err := os.WriteFile(path, []byte("4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	removeOwnPidFile(path, []byte("17\n"))
	if b, err := os.ReadFile(path); err != nil || string(b) != "4242\n" {
		t.Fatalf("another process's pid file was touched: %q, %v", b, err)
	}
	removeOwnPidFile(path, []byte("4242\n"))
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("own pid file not removed: %v", err)
	}
}

// TestStatsStalePidFile: a pid file whose pid now belongs to another
// program (the pid was reused) or to no process makes stats fail naming
// the pid file, and the other program gets no signal (SIGUSR1 would end
// it).
func TestStatsStalePidFile(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pidFile := filepath.Join(dir, PidFileName)
	cfg := conf.Builtin()
	cfg.StateDir = dir
	cfg.Status.Listen = ""

	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	err := PrintStats(cfg, io.Discard)
	want := fmt.Sprintf("%s: stale (pid %d is not audisp-enrich)", pidFile, cmd.Process.Pid)
	if err == nil || err.Error() != want {
		t.Errorf("stats on a reused pid: %v, want %q", err, want)
	}
	time.Sleep(100 * time.Millisecond)
	if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
		t.Fatalf("stats signalled an unrelated process")
	}
	var ws syscall.WaitStatus
	if wpid, _ := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil); wpid != 0 {
		t.Fatalf("the unrelated process ended: %v", ws)
	}

	// A pid that no longer exists: one of our own children, reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", gone.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	err = PrintStats(cfg, io.Discard)
	want = fmt.Sprintf("%s: stale (pid %d does not exist)", pidFile, gone.Process.Pid)
	if err == nil || err.Error() != want {
		t.Errorf("stats on a dead pid: %v, want %q", err, want)
	}
}
