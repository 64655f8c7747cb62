package sinktest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/sinktest"
)

// lineSink appends each message as a line to a file; the file system is
// the peer. It exists to run the suite itself.
type lineSink struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (s *lineSink) Name() string { return "lines" }

func (s *lineSink) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
	return nil
}

func (s *lineSink) Write(ctx context.Context, batch []sinks.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return sinks.ErrNotConnected
	}
	var b bytes.Buffer
	for i, m := range batch {
		if ctx.Err() != nil {
			var done []int
			for j := range i {
				done = append(done, j)
			}
			if _, err := s.f.Write(b.Bytes()); err != nil {
				return err
			}
			return &sinks.PartialError{Delivered: done, Err: ctx.Err()}
		}
		b.Write(m.Value)
		b.WriteByte('\n')
	}
	_, err := s.f.Write(b.Bytes())
	return err
}

func (s *lineSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func TestSuiteOnLineSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	sinktest.Run(t,
		func(t *testing.T) sinks.Sink { return &lineSink{path: path} },
		func(t *testing.T) [][]byte {
			b, err := os.ReadFile(path)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return bytes.Split(b, []byte("\n"))
		})
	// The suite's messages really went through the file.
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte(`{"sinktest":"sinktest-`)); n < 121 {
		t.Fatalf("only %d suite messages in the peer file", n)
	}
}
