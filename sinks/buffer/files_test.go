package buffer

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPlantedLinksNotFollowed: links planted in a disk buffer's directory
// in the place of its lock file, ack marker, marker temp file or a
// segment (the service user owns the directory; the plugin opens it as
// root) never make the buffer read or write the file they name.
func TestPlantedLinksNotFollowed(t *testing.T) {
	for _, name := range []string{"lock", "acks", "acks.tmp"} {
		t.Run(name, func(t *testing.T) {
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			if err := os.WriteFile(victim, []byte("keep\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "spool")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			shared(t, dir)
			if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			b, err := Open(Config{Type: TypeDisk, Dir: dir, MaxBytes: 1 << 20}, Options{Name: "s"})
			if err == nil {
				appendN(t, b, 0, 3)
				readAll(t, b, true)
				b.Close()
			}
			if got, _ := os.ReadFile(victim); string(got) != "keep\n" {
				t.Fatalf("the file the link %s names holds %q, want it unchanged", name, got)
			}
		})
	}
	t.Run("segment", func(t *testing.T) {
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("keep\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "spool")
		b, err := Open(Config{Type: TypeDisk, Dir: dir, MaxBytes: 1 << 20}, Options{Name: "s"})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, b, 0, 1)
		b.Close()
		shared(t, dir)
		segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
		if len(segs) == 0 {
			t.Fatalf("no segment in %s", dir)
		}
		for _, s := range segs {
			os.Remove(s)
			if err := os.Symlink(victim, s); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := Open(Config{Type: TypeDisk, Dir: dir, MaxBytes: 1 << 20}, Options{Name: "s"}); err == nil {
			readAll(t, b, true)
			appendN(t, b, 1, 2)
			b.Close()
		}
		if got, _ := os.ReadFile(victim); string(got) != "keep\n" {
			t.Fatalf("the file a segment link names holds %q, want it unchanged", got)
		}
	})
}

// shared lets accounts other than root write into dir, as the service
// user may write into its spool directories.
func shared(t *testing.T, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
}
