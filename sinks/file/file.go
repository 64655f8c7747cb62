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
	return &Sink{name: name, f: w, w: bufio.NewWriterSize(w, 256<<10)}
}

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
	s.w = bufio.NewWriterSize(f, 256<<10)
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
	for i, m := range batch {
		if s.path != "" && s.maxBytes > 0 && s.size > 0 && s.size+int64(len(m.Value)) > s.maxBytes {
			if err := s.rotate(); err != nil {
				return sinks.DeliveredFirst(i, err)
			}
		}
		n, err := s.w.Write(m.Value)
		if err == nil && (s.binary || len(m.Value) == 0 || m.Value[len(m.Value)-1] != '\n') {
			err = s.w.WriteByte('\n')
			n++
		}
		s.size += int64(n)
		if err != nil {
			return sinks.DeliveredFirst(i, err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	return nil
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
