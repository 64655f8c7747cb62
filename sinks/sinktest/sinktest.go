// Package sinktest is a conformance suite for sinks.Sink implementations,
// in the manner of testing/slogtest. A sink package runs it against its
// real peer (a broker, a syslog daemon, an auditd) started by the test:
//
//	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSinkForPeer(t) },
//		func(t *testing.T) [][]byte { return everythingThePeerReceived(t) })
//
// The suite checks the Sink contract: Connect, Write of batches of several
// sizes with every message arriving at the peer, Close, a second Close,
// Write after Close failing, Connect after Close (the runner does that
// after a lost connection) delivering again, and cancelled contexts being
// honoured. Message values carry unique ids, so Read may
// return everything the peer received since the test began, in any order.
package sinktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Suite describes the sink under test.
type Suite struct {
	// New returns a new, unconnected sink that delivers to the test's peer.
	New func(t *testing.T) sinks.Sink
	// Read returns every payload the peer has received so far.
	Read func(t *testing.T) [][]byte
	// Message returns a message carrying id, in the form the sink accepts.
	// Nil means a small JSON document {"sinktest":"<id>"}.
	Message func(id string) sinks.Message
	// Delivered reports whether payload got carries the message with id.
	// Nil means got contains id.
	Delivered func(got []byte, id string) bool
	// Timeout bounds how long delivered messages may take to show up at
	// the peer. Default 10s.
	Timeout time.Duration
}

// Run runs the suite with the default message format.
func Run(t *testing.T, newSink func(t *testing.T) sinks.Sink, read func(t *testing.T) [][]byte) {
	Suite{New: newSink, Read: read}.Run(t)
}

// Run runs every case as a subtest of t.
func (s Suite) Run(t *testing.T) {
	if s.Message == nil {
		s.Message = func(id string) sinks.Message {
			return sinks.Message{
				Key:   []byte("sinktest"),
				Value: fmt.Appendf(nil, `{"sinktest":%q}`, id),
				Meta:  sinks.Meta{Node: "sinktest", Types: []string{"SYSCALL"}, Keys: []string{"sinktest"}, Severity: 1, Kind: "audit"},
			}
		}
	}
	if s.Delivered == nil {
		s.Delivered = func(got []byte, id string) bool { return bytes.Contains(got, []byte(id)) }
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	run := fmt.Sprintf("%08x", rand.Uint32())
	seq := 0
	batch := func(name string, n int) ([]sinks.Message, []string) {
		var ms []sinks.Message
		var ids []string
		for range n {
			seq++
			id := fmt.Sprintf("sinktest-%s-%s-%d", run, name, seq)
			m := s.Message(id)
			m.Seq = uint64(seq)
			ms = append(ms, m)
			ids = append(ids, id)
		}
		return ms, ids
	}
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), s.Timeout)
		t.Cleanup(cancel)
		return c
	}

	t.Run("Name", func(t *testing.T) {
		if s.New(t).Name() == "" {
			t.Fatal("Name is empty")
		}
	})

	t.Run("ConnectWriteClose", func(t *testing.T) {
		sink := s.New(t)
		if err := sink.Connect(ctx(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		var all []string
		for _, n := range []int{1, 10, 100} {
			ms, ids := batch(fmt.Sprintf("batch%d", n), n)
			s.write(t, sink, ctx(t), ms)
			all = append(all, ids...)
		}
		s.waitDelivered(t, all)
		if err := sink.Close(ctx(t)); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})

	t.Run("DoubleCloseAndWriteAfterClose", func(t *testing.T) {
		sink := s.New(t)
		if err := sink.Connect(ctx(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if err := sink.Close(ctx(t)); err != nil {
			t.Fatalf("Close: %v", err)
		}
		within(t, s.Timeout, "second Close", func() { _ = sink.Close(ctx(t)) })
		ms, _ := batch("afterclose", 1)
		var err error
		within(t, s.Timeout, "Write after Close", func() { err = sink.Write(ctx(t), ms) })
		if err == nil {
			t.Fatal("Write after Close returned nil")
		}
	})

	t.Run("ReconnectAfterClose", func(t *testing.T) {
		sink := s.New(t)
		for round := range 2 {
			if err := sink.Connect(ctx(t)); err != nil {
				t.Fatalf("Connect round %d: %v", round, err)
			}
			ms, ids := batch(fmt.Sprintf("reconnect%d", round), 5)
			s.write(t, sink, ctx(t), ms)
			s.waitDelivered(t, ids)
			if err := sink.Close(ctx(t)); err != nil {
				t.Fatalf("Close round %d: %v", round, err)
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		sink := s.New(t)
		done, cancel := context.WithCancel(context.Background())
		cancel()
		within(t, 2*time.Second, "Connect with a cancelled ctx", func() { _ = sink.Connect(done) })
		if err := sink.Connect(ctx(t)); err != nil {
			t.Fatalf("Connect: %v", err)
		}
		defer sink.Close(ctx(t))
		ms, ids := batch("cancelled", 20)
		var err error
		within(t, 2*time.Second, "Write with a cancelled ctx", func() { err = sink.Write(done, ms) })
		if err == nil {
			// It claimed delivery, so the peer must have everything.
			s.waitDelivered(t, ids)
		}
	})
}

// write calls Write, accepting partial deliveries and retrying the rest
// the way the runner does (reconnecting after ErrNotConnected), for at
// most the timeout.
func (s Suite) write(t *testing.T, sink sinks.Sink, ctx context.Context, ms []sinks.Message) {
	t.Helper()
	for ctx.Err() == nil {
		err := sink.Write(ctx, ms)
		if err == nil {
			return
		}
		if errors.Is(err, sinks.ErrNotConnected) {
			// As the runner does: close, connect again, retry the batch.
			_ = sink.Close(ctx)
			if err := sink.Connect(ctx); err != nil {
				t.Fatalf("Connect after ErrNotConnected: %v", err)
			}
			continue
		}
		var pe *sinks.PartialError
		if !errors.As(err, &pe) {
			t.Fatalf("Write of %d messages: %v", len(ms), err)
		}
		keep := make([]bool, len(ms))
		for _, i := range pe.Delivered {
			if i < 0 || i >= len(ms) {
				t.Fatalf("PartialError index %d out of range for %d messages", i, len(ms))
			}
			keep[i] = true
		}
		var rest []sinks.Message
		for i := range ms {
			if !keep[i] {
				rest = append(rest, ms[i])
			}
		}
		ms = rest
	}
	t.Fatalf("Write did not deliver %d messages in %v", len(ms), s.Timeout)
}

func (s Suite) waitDelivered(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(s.Timeout)
	for {
		got := s.Read(t)
		var missing []string
		for _, id := range ids {
			found := false
			for _, g := range got {
				if s.Delivered(g, id) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages never reached the peer, e.g. %s", len(missing), len(ids), missing[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}
