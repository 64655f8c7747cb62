package plugin

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// blockingPipe returns both ends of a pipe in blocking mode, the way auditd
// hands a plugin its stdin (os.Pipe's ends are non-blocking).
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// blockingSocketpair is the unix stream socketpair auditd 3.x uses.
func blockingSocketpair(t *testing.T) (r, w *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "sock-r"), os.NewFile(uintptr(fds[1]), "sock-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// Over a real pipe and a real socketpair, a readyReader returns every byte
// in order whether records trickle in, come in bursts or pause past the
// polling (then it blocks, and wakes when data comes), and reports EOF
// when the writer closes.
func TestReadyReaderPipeAndSocket(t *testing.T) {
	for name, mk := range map[string]func(*testing.T) (*os.File, *os.File){"pipe": blockingPipe, "socketpair": blockingSocketpair} {
		t.Run(name, func(t *testing.T) {
			r, w := mk(t)
			rr := newReadyReader(r, time.Millisecond)
			ready, ok := rr.(*readyReader)
			if !ok {
				t.Fatalf("%s not read with polling: %T", name, rr)
			}
			// A pipe is enlarged (to livePipeSize when allowed; the
			// kernel's default is 64 KiB); a socket has no pipe size.
			if ps := ready.PipeSize(); name == "pipe" && ps < 64<<10 || name != "pipe" && ps != 0 {
				t.Errorf("%s: pipe size %d", name, ps)
			} else {
				t.Logf("%s: pipe size %d", name, ps)
			}
			var want bytes.Buffer
			var lines [][]byte
			for i := 0; i < 2000; i++ {
				line := append(bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%300), '\n')
				lines = append(lines, line)
				want.Write(line)
			}
			go func() {
				defer w.Close()
				for i, line := range lines {
					if _, err := w.Write(line); err != nil {
						return
					}
					switch {
					case i == 1000:
						time.Sleep(2 * idlePolls * time.Millisecond) // past the polls: a blocking read
					case i%100 == 0:
						time.Sleep(3 * time.Millisecond)
					}
				}
			}()
			got, err := io.ReadAll(rr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("read %d bytes, want %d (or different bytes)", len(got), want.Len())
			}
		})
	}
}

// Only pipes and sockets are polled; a regular file, a reader that is not
// a file, or a pipe with coalescing switched off reads the usual way.
func TestReadyReaderOnlyPipes(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "input")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if rr := newReadyReader(f, time.Millisecond); rr != io.Reader(f) {
		t.Errorf("regular file wrapped: %T", rr)
	}
	r, _ := blockingPipe(t)
	if rr := newReadyReader(r, 0); rr != io.Reader(r) {
		t.Errorf("pipe wrapped with coalescing off: %T", rr)
	}
	br := bytes.NewReader(nil)
	if rr := newReadyReader(br, time.Millisecond); rr != io.Reader(br) {
		t.Errorf("a reader that is not a file wrapped: %T", rr)
	}
}
