package buffer

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskLockWaitsForPreviousOwner: a spool whose lock another open holds
// (a plugin still shutting down while auditd starts the next one) opens
// once that owner closes it, within the wait, and keeps what the owner
// left.
func TestDiskLockWaitsForPreviousOwner(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Type: TypeDisk, Dir: dir, MaxBytes: 1 << 20}
	old, err := Open(cfg, Options{Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Append(msg(1)); err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	released := make(chan error, 1)
	time.AfterFunc(hold, func() { released <- old.Close() })

	start := time.Now()
	b, err := Open(cfg, Options{Name: "new"})
	waited := time.Since(start)
	if err != nil {
		t.Fatalf("open while the old owner shut down (%v): %v", waited, err)
	}
	defer b.Close()
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if waited < hold || waited > hold+time.Second {
		t.Errorf("opened after %v; the lock was released after %v (tries are %v apart)", waited, hold, lockRetry)
	}
	if n := b.Len(); n != 1 {
		t.Errorf("the new owner sees %d records, want the 1 the old one left", n)
	}
}

// TestDiskLockHeldTooLong: a lock held beyond the wait (another process
// really uses the spool) fails the open after lockWait with an error that
// names the directory and says it waited.
func TestDiskLockHeldTooLong(t *testing.T) {
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var logged syncBuf
	start := time.Now()
	b, err := Open(Config{Type: TypeDisk, Dir: dir, MaxBytes: 1 << 20}, Options{Name: "s", Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	waited := time.Since(start)
	if err == nil {
		b.Close()
		t.Fatal("opened a spool whose lock another open holds")
	}
	if waited < lockWait || waited > lockWait+time.Second {
		t.Errorf("gave up after %v, want about %v", waited, lockWait)
	}
	want := "disk buffer " + dir + ": in use by another process (still locked after waiting 3s)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	if !strings.Contains(logged.String(), "waiting for its lock") || !strings.Contains(logged.String(), dir) {
		t.Errorf("the wait was not logged with the directory:\n%s", logged.String())
	}
}
