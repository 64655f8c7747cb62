package safeopen

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenFile: a regular file opens; a link, a FIFO without peer and a
// directory fail at once, and the file a link names is not touched.
func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	fifo := filepath.Join(dir, "fifo")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo, dir} {
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
	if b, err := ReadFile(victim); err != nil || string(b) != "keep" {
		t.Errorf("a regular file: %q %v", b, err)
	}
}
