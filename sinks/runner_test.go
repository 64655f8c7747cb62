package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
)

// testSink is a scripted double of the Sink contract, for the runner's own
// unit tests: behave decides the outcome of each Write.
type testSink struct {
	name    string
	behave  func(call int, batch []sinks.Message) error
	connect func(call int) error

	mu        sync.Mutex
	got       []string
	writes    int
	connects  int
	closes    int
	writing   bool
	overlaps  int
	connected bool
}

func (s *testSink) Name() string { return s.name }

func (s *testSink) Connect(ctx context.Context) error {
	s.mu.Lock()
	s.connects++
	n := s.connects
	s.mu.Unlock()
	if s.connect != nil {
		if err := s.connect(n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.connected = true
	s.mu.Unlock()
	return nil
}

func (s *testSink) Write(ctx context.Context, batch []sinks.Message) error {
	s.mu.Lock()
	if s.writing {
		s.overlaps++
	}
	s.writing = true
	s.writes++
	n := s.writes
	connected := s.connected
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.writing = false; s.mu.Unlock() }()
	if !connected {
		return sinks.ErrNotConnected
	}
	err := error(nil)
	if s.behave != nil {
		err = s.behave(n, batch)
	}
	var pe *sinks.PartialError
	switch {
	case err == nil:
		s.record(batch)
	case errors.As(err, &pe):
		for _, i := range pe.Delivered {
			s.record(batch[i : i+1])
		}
	}
	if errors.Is(err, sinks.ErrNotConnected) {
		s.mu.Lock()
		s.connected = false
		s.mu.Unlock()
	}
	return err
}

func (s *testSink) record(ms []sinks.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		s.got = append(s.got, string(m.Value))
	}
}

func (s *testSink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	s.connected = false
	return nil
}

func (s *testSink) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func fastConfig() sinks.RunnerConfig {
	c := sinks.DefaultRunnerConfig()
	c.BatchSize = 10
	c.BackoffMin = time.Millisecond
	c.BackoffMax = 5 * time.Millisecond
	return c
}

type setup struct {
	reg   *metrics.Registry
	drops chan string
	bcfg  buffer.Config
}

func newSetup(t *testing.T) *setup {
	return &setup{
		reg:   &metrics.Registry{},
		drops: make(chan string, 100),
		bcfg:  buffer.Config{Type: buffer.TypeMemory},
	}
}

func (s *setup) runner(t *testing.T, sink sinks.Sink, cfg sinks.RunnerConfig) *sinks.Runner {
	t.Helper()
	r, err := sinks.NewRunner(sink, cfg, buffer.Opener(s.bcfg, buffer.Options{Name: sink.Name()}), sinks.RunnerOptions{
		Metrics: s.reg,
		OnDrop:  func(sink string, n int, reason string) { s.drops <- fmt.Sprintf("%s:%d:%s", sink, n, reason) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

func values(from, to int) []string {
	var v []string
	for i := from; i < to; i++ {
		v = append(v, fmt.Sprintf("m%04d", i))
	}
	return v
}

func appendValues(t *testing.T, r *sinks.Runner, vals []string) {
	t.Helper()
	for _, v := range vals {
		if err := r.Append(sinks.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunnerDeliversInOrderAndAcks(t *testing.T) {
	s := newSetup(t)
	sink := &testSink{name: "ok"}
	r := s.runner(t, sink, fastConfig())
	r.Start()
	appendValues(t, r, values(0, 100))
	testsupport.WaitFor(t, 5*time.Second, "100 deliveries", func() bool { return len(sink.delivered()) == 100 })
	if !slices.Equal(sink.delivered(), values(0, 100)) {
		t.Fatalf("order: %v", sink.delivered())
	}
	testsupport.WaitFor(t, 5*time.Second, "acks", func() bool { st := r.Stats(); return st.Acked == 100 && st.Queued == 0 && st.InFlight == 0 })
	st := r.Stats()
	if !st.Connected || st.Retried != 0 || st.OldestAge != 0 {
		t.Fatalf("stats %+v", st)
	}
	snap := s.reg.Snapshot()
	if snap[`audisp_enrich_sink_acked_total{sink="ok"}`] != 100 || snap[`audisp_enrich_sink_queued{sink="ok"}`] != 0 {
		t.Fatalf("metrics %v", snap)
	}
}

func TestRunnerRetriesFailedWrites(t *testing.T) {
	s := newSetup(t)
	sink := &testSink{name: "flaky", behave: func(call int, _ []sinks.Message) error {
		if call <= 3 {
			return errors.New("broker says no")
		}
		return nil
	}}
	r := s.runner(t, sink, fastConfig())
	appendValues(t, r, values(0, 10))
	r.Start()
	testsupport.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(sink.delivered()) == 10 })
	if !slices.Equal(sink.delivered(), values(0, 10)) {
		t.Fatalf("got %v", sink.delivered())
	}
	st := r.Stats()
	if st.Retried != 30 || !strings.Contains(st.LastError, "broker says no") {
		t.Fatalf("retried %d last error %q, want 30 and the error", st.Retried, st.LastError)
	}
}

func TestRunnerPartialErrorRetriesOnlyTheRest(t *testing.T) {
	s := newSetup(t)
	sink := &testSink{name: "partial", behave: func(call int, batch []sinks.Message) error {
		var even []int
		for i, m := range batch {
			var n int
			fmt.Sscanf(string(m.Value), "m%d", &n)
			if n%2 == 0 {
				even = append(even, i)
			}
		}
		if len(even) == len(batch) {
			return nil
		}
		if call%2 == 1 && len(even) > 0 {
			return &sinks.PartialError{Delivered: even, Err: errors.New("odd ones failed")}
		}
		return nil
	}}
	r := s.runner(t, sink, fastConfig())
	appendValues(t, r, values(0, 10))
	r.Start()
	testsupport.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(sink.delivered()) == 10 })
	got := sink.delivered()
	slices.Sort(got)
	if !slices.Equal(got, values(0, 10)) {
		t.Fatalf("each message once: %v", sink.delivered())
	}
	testsupport.WaitFor(t, 5*time.Second, "acks", func() bool { return r.Stats().Acked == 10 })
	if st := r.Stats(); st.Retried != 5 {
		t.Fatalf("retried %d, want the 5 odd ones", st.Retried)
	}
}

func TestRunnerReconnectsOnErrNotConnected(t *testing.T) {
	s := newSetup(t)
	sink := &testSink{name: "drop", behave: func(call int, _ []sinks.Message) error {
		if call <= 2 {
			return fmt.Errorf("peer went away: %w", sinks.ErrNotConnected)
		}
		return nil
	}, connect: func(call int) error {
		if call == 2 {
			return errors.New("connection refused")
		}
		return nil
	}}
	r := s.runner(t, sink, fastConfig())
	appendValues(t, r, values(0, 5))
	r.Start()
	testsupport.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(sink.delivered()) == 5 })
	sink.mu.Lock()
	connects, closes, overlaps := sink.connects, sink.closes, sink.overlaps
	sink.mu.Unlock()
	if connects != 4 || closes != 2 {
		t.Fatalf("connects %d closes %d, want 4 (1 + 2 reconnects + 1 refused) and 2", connects, closes)
	}
	if overlaps != 0 {
		t.Fatal("Write called concurrently")
	}
	if st := r.Stats(); st.Reconnects != 2 {
		t.Fatalf("reconnects %d", st.Reconnects)
	}
}

// A sink stuck in Write, ignoring ctx: Stop still returns in time, the
// producer never waits, and a disk buffer keeps every message.
func TestRunnerStopWithHungSinkKeepsSpool(t *testing.T) {
	s := newSetup(t)
	s.bcfg = buffer.Config{Type: buffer.TypeDisk, Dir: filepath.Join(t.TempDir(), "spool")}
	release := make(chan struct{})
	defer close(release)
	sink := &testSink{name: "hung", behave: func(int, []sinks.Message) error { <-release; return nil }}
	r := s.runner(t, sink, fastConfig())
	r.Start()
	start := time.Now()
	appendValues(t, r, values(0, 2000))
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("2000 appends took %v with a hung sink", d)
	}
	testsupport.WaitFor(t, 5*time.Second, "a write in flight", func() bool { return r.Stats().InFlight > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start = time.Now()
	err := r.Stop(ctx)
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Fatalf("Stop took %v", d)
	}
	if err == nil {
		t.Fatal("Stop hid that the sink was still writing")
	}
	b, err := buffer.Open(s.bcfg, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Len() != 2000 {
		t.Fatalf("spool holds %d after stop, want 2000", b.Len())
	}
}

// A dead destination that honours ctx: Stop is clean and prompt.
func TestRunnerStopWithDeadDestination(t *testing.T) {
	s := newSetup(t)
	s.bcfg = buffer.Config{Type: buffer.TypeDisk, Dir: filepath.Join(t.TempDir(), "spool")}
	sink := &testSink{name: "dead", connect: func(int) error { return errors.New("connection refused") }}
	cfg := fastConfig()
	cfg.BackoffMax = 10 * time.Second
	r := s.runner(t, sink, cfg)
	r.Start()
	appendValues(t, r, values(0, 50))
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Fatalf("Stop took %v while backing off", d)
	}
	b, err := buffer.Open(s.bcfg, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Len() != 50 {
		t.Fatalf("spool holds %d, want 50", b.Len())
	}
	// Stop keeps the series (a sink of the same name continues them);
	// UnregisterLabel removes every one.
	if _, ok := s.reg.Snapshot()[`audisp_enrich_sink_acked_total{sink="dead"}`]; !ok {
		t.Fatal("Stop removed the sink's counters")
	}
	s.reg.UnregisterLabel(`sink="dead"`)
	if len(s.reg.Snapshot()) != 0 {
		t.Fatalf("metrics left after Unregister: %v", s.reg.Snapshot())
	}
}

// Handover moves the buffer, the counters and the drop reports to a
// runner over a new sink: nothing queued is lost or sent twice, and
// sink_acked_total goes on from where it was.
func TestRunnerHandoverKeepsBufferAndCounters(t *testing.T) {
	s := newSetup(t)
	var down atomic.Bool
	first := &testSink{name: "h", behave: func(int, []sinks.Message) error {
		if down.Load() {
			return errors.New("down")
		}
		return nil
	}}
	r := s.runner(t, first, fastConfig())
	r.Start()
	appendValues(t, r, values(0, 100))
	testsupport.WaitFor(t, 5*time.Second, "first delivery", func() bool { return len(first.delivered()) == 100 })
	// The first sink stops acknowledging; what is queued meanwhile must
	// reach the second sink.
	down.Store(true)
	appendValues(t, r, values(100, 150))
	second := &testSink{name: "h"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r2, err := r.Handover(ctx, second, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r2.Stop(context.Background()) })
	r2.Start()
	appendValues(t, r2, values(150, 200))
	testsupport.WaitFor(t, 5*time.Second, "second delivery", func() bool { return len(second.delivered()) == 100 })
	if got, want := second.delivered(), values(100, 200); !slices.Equal(got, want) {
		t.Fatalf("second sink got %d messages, want %v..%v in order", len(got), want[0], want[len(want)-1])
	}
	// The runner acks after Write returned, so the counter may lag the sink.
	testsupport.WaitFor(t, 5*time.Second, "sink_acked_total = 200 after handover", func() bool {
		return s.reg.Snapshot()[`audisp_enrich_sink_acked_total{sink="h"}`] == 200
	})
	if _, err := r.Handover(ctx, &testSink{name: "other"}, fastConfig()); err == nil {
		t.Fatal("handover to a sink of another name was accepted")
	}
}

// A handover that cuts a write short: the messages the sink reports
// delivered (a *PartialError, as netconn returns when the cancelled
// context interrupts a batch) are acknowledged, not given back, so the
// new sink does not send them a second time.
func TestRunnerHandoverMidWriteSendsNothingTwice(t *testing.T) {
	s := newSetup(t)
	midWrite := make(chan struct{})
	var once sync.Once
	first := &testSink{name: "cut", behave: func(call int, batch []sinks.Message) error {
		if call > 1 || len(batch) < 4 {
			return nil
		}
		once.Do(func() { close(midWrite) })
		time.Sleep(200 * time.Millisecond)                    // the write blocks; the handover cancels it
		return sinks.DeliveredFirst(3, sinks.ErrNotConnected) // three were on the wire (testSink records them)
	}}
	r := s.runner(t, first, fastConfig())
	appendValues(t, r, values(0, 10))
	r.Start()
	<-midWrite
	second := &testSink{name: "cut"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r2, err := r.Handover(ctx, second, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r2.Stop(context.Background()) })
	r2.Start()
	testsupport.WaitFor(t, 5*time.Second, "the rest at the second sink", func() bool { return len(second.delivered()) >= 7 })
	got := append(first.delivered(), second.delivered()...)
	if want := values(0, 10); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want each of %v once, in order", got, want)
	}
	testsupport.WaitFor(t, 5*time.Second, "sink_acked_total = 10", func() bool {
		return s.reg.Snapshot()[`audisp_enrich_sink_acked_total{sink="cut"}`] == 10
	})
}

func TestRunnerDropsAreCountedAndReported(t *testing.T) {
	s := newSetup(t)
	s.bcfg = buffer.Config{Type: buffer.TypeMemory, MaxEvents: 10, WhenFull: buffer.DropNewest}
	sink := &testSink{name: "full"}
	r := s.runner(t, sink, fastConfig()) // not started: nothing drains
	for _, v := range values(0, 25) {
		r.Append(sinks.Message{Value: []byte(v)})
	}
	// The first report comes at once, the rest coalesced a second later.
	total, reports := 0, 0
	for total < 15 {
		select {
		case got := <-s.drops:
			var n int
			if _, err := fmt.Sscanf(got, "full:%d:drop_newest", &n); err != nil {
				t.Fatalf("OnDrop got %q", got)
			}
			total += n
			reports++
		case <-time.After(3 * time.Second):
			t.Fatalf("OnDrop reported %d of 15", total)
		}
	}
	if total != 15 || reports > 2 {
		t.Fatalf("%d drops in %d reports, want 15 in at most 2", total, reports)
	}
	if st := r.Stats(); st.Dropped["drop_newest"] != 15 || st.Queued != 10 {
		t.Fatalf("stats %+v", st)
	}
	if v := s.reg.Snapshot()[`audisp_enrich_sink_dropped_total{sink="full",reason="drop_newest"}`]; v != 15 {
		t.Fatalf("dropped metric %v", v)
	}
}

func TestRunnerLingerFillsBatches(t *testing.T) {
	s := newSetup(t)
	var mu sync.Mutex
	var sizes []int
	sink := &testSink{name: "linger", behave: func(_ int, b []sinks.Message) error {
		mu.Lock()
		sizes = append(sizes, len(b))
		mu.Unlock()
		return nil
	}}
	cfg := fastConfig()
	cfg.Linger = 200 * time.Millisecond
	r := s.runner(t, sink, cfg)
	r.Start()
	for _, v := range values(0, 10) {
		r.Append(sinks.Message{Value: []byte(v)})
		time.Sleep(5 * time.Millisecond)
	}
	testsupport.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(sink.delivered()) == 10 })
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) > 2 {
		t.Fatalf("linger did not batch: write sizes %v", sizes)
	}
}

func TestRunnerConfigValidate(t *testing.T) {
	good := sinks.DefaultRunnerConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	var zero sinks.RunnerConfig
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero config (all defaults) rejected: %v", err)
	}
	for _, c := range []sinks.RunnerConfig{
		{BatchSize: -1},
		{Linger: time.Minute},
		{BackoffMin: time.Minute, BackoffMax: time.Second},
		{WriteTimeout: -time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestNewRunnerBufferError(t *testing.T) {
	reg := &metrics.Registry{}
	_, err := sinks.NewRunner(&testSink{name: "x"}, fastConfig(), func(func(int, string)) (sinks.Buffer, error) {
		return nil, errors.New("spool dir not writable")
	}, sinks.RunnerOptions{Metrics: reg})
	if err == nil || !strings.Contains(err.Error(), "spool dir not writable") {
		t.Fatalf("err %v", err)
	}
	if len(reg.Snapshot()) != 0 {
		t.Fatalf("metrics left behind: %v", reg.Snapshot())
	}
}

// TestRunnerEvictedInFlightNotAcked: drop_oldest evicts messages that are
// in flight (memory: the oldest entries; disk: the oldest segment); when
// their write then succeeds they are not counted as acknowledged too, so
// published = acked + queued + dropped.
func TestRunnerEvictedInFlightNotAcked(t *testing.T) {
	for _, bcfg := range []buffer.Config{
		{Type: buffer.TypeMemory, MaxEvents: 2},
		{Type: buffer.TypeDisk, MaxBytes: 4096},
	} {
		t.Run(bcfg.Type, func(t *testing.T) {
			s := newSetup(t)
			s.bcfg = bcfg
			s.bcfg.Dir = t.TempDir()
			release := make(chan struct{})
			sink := &testSink{name: "evict", behave: func(call int, _ []sinks.Message) error {
				if call == 1 {
					<-release
				}
				return nil
			}}
			cfg := fastConfig()
			cfg.BatchSize = 2
			r := s.runner(t, sink, cfg)
			// Both before the start, so that the first batch holds both
			// (appended after it, the runner may take the first alone, and
			// that batch blocks with one in flight).
			appendValues(t, r, values(0, 2))
			r.Start()
			for deadline := time.Now().Add(5 * time.Second); r.Stats().InFlight != 2; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the first batch never went in flight")
				}
			}
			const published = 42
			for _, v := range values(2, published) {
				_ = r.Append(sinks.Message{Value: []byte(strings.Repeat(v, 25))})
			}
			close(release)
			var st sinks.RunnerStats
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				st = r.Stats()
				if st.Queued == 0 || time.Now().After(deadline) {
					break
				}
			}
			if st.Dropped["drop_oldest"] == 0 {
				t.Fatalf("nothing was evicted: %+v", st)
			}
			if got := st.Acked + uint64(st.Queued) + st.Dropped["drop_oldest"]; got != published {
				t.Errorf("acked %d + queued %d + dropped %d = %d, want %d published", st.Acked, st.Queued, st.Dropped["drop_oldest"], got, published)
			}
		})
	}
}

// TestRunnerStopHandsOverPendingDrops: drop reports still held back by
// the once-a-second coalescing when the runner stops, and the drops the
// buffer's Close reports (a memory buffer's content), reach OnDrop before
// Stop returns.
func TestRunnerStopHandsOverPendingDrops(t *testing.T) {
	s := newSetup(t)
	s.bcfg = buffer.Config{Type: buffer.TypeMemory, MaxEvents: 2, WhenFull: buffer.DropNewest}
	r := s.runner(t, &testSink{name: "stop"}, fastConfig()) // not started: nothing drains
	for _, v := range values(0, 5) {
		_ = r.Append(sinks.Message{Value: []byte(v)})
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for len(s.drops) > 0 {
		var n int
		var reason string
		if _, err := fmt.Sscanf(strings.ReplaceAll(<-s.drops, ":", " "), "stop %d %s", &n, &reason); err != nil {
			t.Fatal(err)
		}
		got[reason] += n
	}
	if got["drop_newest"] != 3 || got["shutdown"] != 2 || len(got) != 2 {
		t.Errorf("OnDrop got %v by the time Stop returned, want drop_newest 3 and shutdown 2", got)
	}
}
