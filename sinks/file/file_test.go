package file

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/sinktest"
)

func msgs(from, n int) []sinks.Message {
	var out []sinks.Message
	for i := from; i < from+n; i++ {
		out = append(out, sinks.Message{Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	return out
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestRotateAndReopen: the file rotates by size to path.1..path.keep,
// oldest dropped, every line whole; Reopen follows a file moved away
// (logrotate), so nothing is written to the old inode afterwards.
func TestRotateAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "events.json")
	s, err := NewFile("f", path, 100, 2, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// 8-9 bytes per line: 100 bytes hold 11 lines; 40 lines make 3+ files.
	if err := s.Write(ctx, msgs(0, 40)); err != nil {
		t.Fatal(err)
	}
	cur, one, two := lines(t, path), lines(t, path+".1"), lines(t, path+".2")
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("more rotated files than keep")
	}
	all := append(append(append([]string{}, two...), one...), cur...)
	for i := 1; i < len(all); i++ {
		var a, b int
		fmt.Sscanf(all[i-1], `{"n":%d}`, &a)
		fmt.Sscanf(all[i], `{"n":%d}`, &b)
		if b != a+1 {
			t.Fatalf("lines out of order or torn: %q then %q", all[i-1], all[i])
		}
	}
	if all[len(all)-1] != `{"n":39}` {
		t.Errorf("last line %q", all[len(all)-1])
	}
	for _, f := range []string{path, path + ".1"} {
		if st, _ := os.Stat(f); st.Size() > 100 {
			t.Errorf("%s has %d bytes, over max_bytes", f, st.Size())
		}
	}
	// logrotate moves the file away, then SIGHUP.
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	s.Reopen()
	if err := s.Write(ctx, msgs(100, 1)); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, path); len(got) != 1 || got[0] != `{"n":100}` {
		t.Errorf("after reopen the new file holds %q", got)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, msgs(0, 1)); err == nil {
		t.Error("write after close succeeded")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
}

// TestConformance runs the sinks.Sink conformance suite against the file
// sink, reading the file back.
func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	sinktest.Run(t, func(t *testing.T) sinks.Sink {
		s, err := NewFile("conformance", path, 0, 1, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T) [][]byte {
		b, _ := os.ReadFile(path)
		return bytes.Split(b, []byte("\n"))
	})
}
