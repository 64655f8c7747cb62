package plugin

import (
	"os"
	"path/filepath"
	"testing"
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
