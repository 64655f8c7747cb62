package safeopen

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// sharedDir returns a directory that accounts other than root may write
// into, as the service user's state directory is for root.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOpenFile: in a directory another account may write, a regular file
// opens; a link, a hard link, a FIFO without peer and a directory fail at
// once, and the file they name is not touched (not even by O_TRUNC).
func TestOpenFile(t *testing.T) {
	dir := sharedDir(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	hard := filepath.Join(dir, "hard")
	fifo := filepath.Join(dir, "fifo")
	sub := filepath.Join(dir, "sub")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, hard); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, hard, fifo, sub} {
		done := make(chan error, 1)
		go func() {
			f, err := OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: opened", p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the open blocked", p)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the linked file holds %q", b)
	}
	if _, err := ReadFile(link); err == nil {
		t.Error("read through a link")
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(plain, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("a regular file: %v", err)
	}
	f.WriteString("new")
	f.Close()
	if b, err := ReadFile(plain); err != nil || string(b) != "new" {
		t.Errorf("a regular file, truncated: %q %v", b, err)
	}
}

// TestOpenFileRootOnlyDir: in a directory only root can write, paths open
// as os.OpenFile opens them: a link root made, a device.
func TestOpenFileRootOnlyDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a directory only root can write")
	}
	dir := t.TempDir() // root's, 0700
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, "/dev/null"} {
		f, err := OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		f.Close()
	}
}
