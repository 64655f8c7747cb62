package virustotal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// The tests in this package share vt-go's package-global host and must not
// call t.Parallel.

const testKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const eicar = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

// reply is one answer of the fake API.
type reply = vtfake.Reply

var (
	apiError  = vtfake.APIError
	fileReply = vtfake.FileReply
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeClock runs at real speed from a chosen start and can jump ahead.
type fakeClock struct {
	mu    sync.Mutex
	base  time.Time
	start time.Time
}

func newClock(base time.Time) *fakeClock { return &fakeClock{base: base, start: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.start))
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base = c.base.Add(d)
}

// Set moves the clock to t (forward only in these tests).
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.start = t, time.Now()
}

// collector is the test's Emitter.
type collector struct {
	mu   sync.Mutex
	docs []*audit.Event
	ch   chan *audit.Event
}

func (c *collector) Emit(ev *audit.Event) {
	c.mu.Lock()
	c.docs = append(c.docs, ev)
	c.mu.Unlock()
	c.ch <- ev
}

func (c *collector) all() []*audit.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*audit.Event(nil), c.docs...)
}

// harness runs an Enricher against a fakeVT with a fake clock.
type harness struct {
	t    testing.TB
	fake *vtfake.Server
	clk  *fakeClock
	logs *testsupport.SyncBuffer
	out  *collector
	cfg  Config
	tune tuning
	reg  *metrics.Registry // the enricher's; a restart gets a new one, as a new process would
	e    *Enricher
}

// newHarness starts an enricher with generous budgets and fast backoff;
// mod adjusts the config first.
func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, fake: vtfake.New(t, testKey), logs: &testsupport.SyncBuffer{}, reg: &metrics.Registry{},
		out: &collector{ch: make(chan *audit.Event, 1000)},
		clk: newClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))}
	h.cfg = DefaultConfig()
	h.cfg.Enabled = true
	h.cfg.APIKey = testKey
	h.cfg.Host = h.fake.URL()
	h.cfg.Timeout = 2 * time.Second
	h.cfg.PerMinute, h.cfg.PerDay, h.cfg.PerMonth = 1000, 100000, 1000000
	h.cfg.StateDir = t.TempDir()
	if mod != nil {
		mod(&h.cfg)
	}
	h.tune = tuning{now: h.clk.Now, backoffBase: 10 * time.Millisecond, backoffMax: 40 * time.Millisecond,
		maxAttempts: 3, flushEvery: 20 * time.Millisecond}
	h.start()
	return h
}

func (h *harness) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (h *harness) start() {
	h.t.Helper()
	e, err := newEnricher(h.cfg, h.out, h.logger(), h.tune, h.reg)
	if err != nil {
		h.t.Fatalf("newEnricher: %v", err)
	}
	h.e = e
	h.t.Cleanup(func() { e.Close() })
}

func (h *harness) restart() {
	h.t.Helper()
	if err := h.e.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.reg = &metrics.Registry{}
	h.start()
}

// kick wakes the worker after the clock jumped.
func (h *harness) kick() {
	select {
	case h.e.wake <- struct{}{}:
	default:
	}
}

func (h *harness) enrich(ev *audit.Event) *audit.VTResult {
	h.t.Helper()
	if err := h.e.Enrich(context.Background(), ev); err != nil {
		h.t.Fatalf("Enrich returned %v", err)
	}
	return ev.VirusTotal
}

// verdict waits for the next verdict document.
func (h *harness) verdict() *audit.Event {
	h.t.Helper()
	select {
	case d := <-h.out.ch:
		if d.Kind != audit.KindVerdict {
			h.t.Fatalf("emitted kind %v, want verdict", d.Kind)
		}
		return d
	case <-time.After(5 * time.Second):
		h.t.Fatal("no verdict document within 5s")
		return nil
	}
}

// noVerdict checks that no verdict document arrives for a while.
func (h *harness) noVerdict(d time.Duration) {
	h.t.Helper()
	select {
	case v := <-h.out.ch:
		h.t.Fatalf("unexpected verdict document: %+v", v.VirusTotal)
	case <-time.After(d):
	}
}

// queueDepth reads the queue length.
func (h *harness) queueDepth() int {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return len(h.e.q.items)
}

func sha(i int) string { return fmt.Sprintf("%064x", i) }

func ev(serial uint32, hashes ...audit.FileHash) *audit.Event {
	return &audit.Event{ID: audit.EventID{Node: "n1", Sec: 1764081400, Msec: 123, Serial: serial},
		Enrichment: audit.Enrichment{Hashes: hashes}}
}

func fh256(hex string) audit.FileHash {
	return audit.FileHash{Path: "/usr/bin/x", Algo: "sha256", Hex: hex}
}
