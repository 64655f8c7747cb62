// Package file is the stdout and file sink: encoded documents, one per
// line, appended to a file (reopened on request, rotated by size) or
// written to standard output.
package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Sink appends messages to a file or writes them to a stream.
//
// Write returns after every message reached the kernel (write(2)); it does
// not fsync. Reopen may be called from any goroutine (SIGHUP); the other
// methods follow the sinks.Sink contract (Connect may follow Close).
//
// A failed write (or rotation) leaves no torn document in a file: the file
// is cut back to the end of the last document that was written whole.
// Write then reports the documents written (a *sinks.PartialError) and
// sinks.ErrNotConnected, and drops the file and its writer, so that the
// caller closes the sink and the next Connect opens the file afresh. A
// stream cannot be cut back: the part of a document it took stays there,
// and the document is written whole again on the next attempt.
type Sink struct {
	name     string
	path     string // "" for a stream
	binary   bool   // every message is followed by a newline (SetBinary)
	maxBytes int64
	keep     int
	mode     os.FileMode

	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	size   int64
	reopen bool
	closed bool
}

// NewFile returns a sink appending to path, rotating to path.1..path.keep
// when the file passes maxBytes (0: never).
func NewFile(name, path string, maxBytes int64, keep int, mode os.FileMode) (*Sink, error) {
	if path == "" {
		return nil, errors.New("file sink: path is empty")
	}
	if keep < 1 {
		keep = 1
	}
	return &Sink{name: name, path: path, maxBytes: maxBytes, keep: keep, mode: mode}, nil
}

// NewStream returns a sink writing to w (standard output).
func NewStream(name string, w *os.File) *Sink {
	return &Sink{name: name, f: w, w: newWriter(w)}
}

// newWriter is the buffer a sink writes f through.
func newWriter(f *os.File) *bufio.Writer { return bufio.NewWriterSize(f, 256<<10) }

// SetBinary makes Write follow every message with a newline, also one
// whose last byte is a newline: a binary message (msgpack) may end in 0x0a
// by chance, and a reader splits the file at the newline after each one.
// Call it before the first Write.
func (s *Sink) SetBinary() { s.binary = true }

// Name returns the sink name.
func (s *Sink) Name() string { return s.name }

// Connect opens the file (creating its directory) for appending; after
// Close it opens it again (a stream is used again).
func (s *Sink) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = false
	if s.path == "" || s.f != nil {
		return nil
	}
	return s.open()
}

func (s *Sink) open() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, s.mode)
	if err != nil {
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	s.f, s.size = f, st.Size()
	s.w = newWriter(f)
	return nil
}

// Reopen makes the next Write close and reopen the file (after logrotate
// moved it). It is safe to call from a signal handler goroutine.
func (s *Sink) Reopen() {
	s.mu.Lock()
	s.reopen = true
	s.mu.Unlock()
}

// Write writes every message followed by a newline (unless it ends in one
// and the sink is not binary).
func (s *Sink) Write(_ context.Context, batch []sinks.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("file sink: write after close")
	}
	if s.path != "" && (s.reopen || s.f == nil) {
		s.reopen = false
		if s.f != nil {
			_ = s.w.Flush()
			s.f.Close()
			s.f = nil
		}
		if err := s.open(); err != nil {
			return sinks.ErrNotConnected
		}
	}
	if s.w == nil { // a stream whose writer a failure dropped
		s.w = newWriter(s.f)
	}
	// batch[from:] goes to the current file, from offset start on.
	from, start := 0, s.size
	for i, m := range batch {
		if s.path != "" && s.maxBytes > 0 && s.size > 0 && s.size+int64(len(m.Value)) > s.maxBytes {
			if err := s.rotate(); err != nil {
				return s.fail(from, batch[from:i], start, err)
			}
			from, start = i, s.size
		}
		n, err := s.w.Write(m.Value)
		s.size += int64(n)
		if err == nil && s.newline(m.Value) {
			if err = s.w.WriteByte('\n'); err == nil {
				s.size++
			}
		}
		if err != nil {
			return s.fail(from, batch[from:i+1], start, err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return s.fail(from, batch[from:], start, err)
	}
	return nil
}

// newline reports whether v is followed by a newline in the output.
func (s *Sink) newline(v []byte) bool {
	return s.binary || len(v) == 0 || v[len(v)-1] != '\n'
}

// fail handles a failed write: part holds the messages that went to the
// current file from offset start on (after the from messages of the batch
// before them), the last possibly in part. It counts the messages of part
// whose bytes all reached the kernel, cuts a file back to the end of the
// last of them, drops the file and writer (bufio's error is sticky), and
// returns the error that says how many of the batch were written and
// that the sink must be reconnected.
func (s *Sink) fail(from int, part []sinks.Message, start int64, err error) error {
	reached := s.size
	if s.w != nil {
		reached -= int64(s.w.Buffered())
	}
	end, whole := start, 0
	for _, m := range part {
		next := end + int64(len(m.Value))
		if s.newline(m.Value) {
			next++
		}
		if next > reached {
			break
		}
		end, whole = next, whole+1
	}
	if s.path != "" && s.f != nil {
		if reached > end {
			if terr := s.f.Truncate(end); terr != nil {
				err = fmt.Errorf("%w; a torn document is left at offset %d: %w", err, end, terr)
			}
		}
		s.f.Close()
		s.f = nil
	}
	s.w, s.size = nil, end
	return sinks.DeliveredFirst(from+whole, fmt.Errorf("file sink %s: %w (%w)", s.name, err, sinks.ErrNotConnected))
}

// rotate renames path to path.1 (shifting older ones) and opens a new file.
func (s *Sink) rotate() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.f.Close()
	s.f = nil
	for i := s.keep - 1; i >= 1; i-- {
		_ = os.Rename(s.path+"."+strconv.Itoa(i), s.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(s.path, s.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return s.open()
}

// Close flushes and closes the file (a stream is flushed, not closed).
// Write fails until Connect is called again.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.w == nil {
		return nil
	}
	err := s.w.Flush()
	if s.path != "" && s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		s.f, s.w = nil, nil
	}
	return err
}

var _ sinks.Sink = (*Sink)(nil)
