package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
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

// connected returns a file sink (mode 0640) on path, connected.
func connected(t *testing.T, path string, maxBytes int64, keep int) *Sink {
	t.Helper()
	s, err := NewFile("f", path, maxBytes, keep, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRotateAndReopen: the file rotates by size to path.1..path.keep,
// oldest dropped, every line whole; Reopen follows a file moved away
// (logrotate), so nothing is written to the old inode afterwards.
func TestRotateAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "events.json")
	s := connected(t, path, 100, 2)
	ctx := context.Background()
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

// TestWriteErrorReconnects: a write the file system refuses (here the
// process's file size limit, RLIMIT_FSIZE, a real EFBIG) reports the
// documents written whole and ErrNotConnected, leaves no torn document in
// the file, and once the fault is gone the sink writes again after the
// Close and Connect its caller does on ErrNotConnected (bufio's sticky
// error no longer disables it).
func TestWriteErrorReconnects(t *testing.T) {
	signal.Ignore(syscall.SIGXFSZ) // EFBIG instead of the signal
	defer signal.Reset(syscall.SIGXFSZ)
	path := filepath.Join(t.TempDir(), "events.json")
	s := connected(t, path, 0, 1)
	ctx := context.Background()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 1000
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	big := sinks.Message{Value: []byte(`{"big":"` + strings.Repeat("a", 1500) + `"}`)}
	err := s.Write(ctx, append(msgs(0, 2), big))
	if restore := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); restore != nil {
		t.Fatal(restore)
	}
	var pe *sinks.PartialError
	if !errors.As(err, &pe) || len(pe.Delivered) != 2 || !errors.Is(err, sinks.ErrNotConnected) {
		t.Fatalf("write over the limit: %v; want the first 2 delivered and ErrNotConnected", err)
	}
	if got := lines(t, path); len(got) != 2 || got[1] != `{"n":1}` {
		t.Fatalf("after the failed write the file holds %q, want the 2 whole documents", got)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []sinks.Message{big, msgs(2, 1)[0]}); err != nil {
		t.Fatalf("write after the fault cleared: %v", err)
	}
	if got := lines(t, path); len(got) != 4 || got[2] != string(big.Value) || got[3] != `{"n":2}` {
		t.Errorf("the file holds %d lines, want the 2 before, the big one and {\"n\":2}", len(got))
	}
}
