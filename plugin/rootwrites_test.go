package plugin

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRootWritesRefuseLinks: the files root writes at start into
// directories the service user may own (the parse-error log, the pid
// file) are not written through a link or into a FIFO planted in their
// place: the file the link names keeps its content, and a FIFO without
// reader fails the open instead of blocking the start. In a directory
// only root can write, "/dev/stderr" is a parse-error log as before.
func TestRootWritesRefuseLinks(t *testing.T) {
	writers := map[string]func(path string) error{
		"parse-error log": func(path string) error {
			f, err := openErrorFile(path)
			if err == nil {
				_, err = f.WriteString("x\n")
				f.Close()
			}
			return err
		},
		"pid file": func(path string) error { return writePidFile(path, []byte("1\n")) },
	}
	for name, write := range writers {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o777); err != nil { // another account may write here, as in the service user's directories
				t.Fatal(err)
			}
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("keep\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, "link")
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			if err := write(link); err == nil {
				t.Error("wrote through a symbolic link")
			}
			if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
				t.Errorf("the linked file holds %q, want it unchanged", b)
			}
			fifo := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- write(fifo) }()
			select {
			case err := <-done:
				if err == nil {
					t.Error("wrote into a FIFO")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the open of a FIFO without reader blocked")
			}
			plain := filepath.Join(dir, "plain")
			if err := write(plain); err != nil {
				t.Fatalf("a regular file: %v", err)
			}
			if fi, err := os.Lstat(plain); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("a regular file: %v %v", fi, err)
			}
		})
	}
}

// TestWritePidFileReplacesContent: a pid file left by an earlier plugin
// with a longer pid is replaced whole.
func TestWritePidFileReplacesContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), PidFileName)
	if err := os.WriteFile(path, []byte("1234567\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePidFile(path, []byte("42\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "42\n" {
		t.Fatalf("pid file holds %q, want %q", b, "42\n")
	}
}

// TestErrorLogDevices: parse_errors may name a device in /dev, a
// directory only root can write (safeopen follows links there).
func TestErrorLogDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("/dev is root's: the strict rules apply to other users")
	}
	for _, p := range []string{"/dev/stderr", "/dev/null"} {
		f, err := openErrorFile(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		f.Close()
	}
}
