package virustotal

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// The tests in this package share vt-go's package-global host and must not
// call t.Parallel.

const testKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const eicar = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

// reply is one scripted answer of the fake API.
type reply struct {
	status int
	body   string
	ctype  string        // default application/json
	delay  time.Duration // answer late (the request context still cancels)
	hijack bool          // drop the connection without answering
}

func apiError(status int, code, msg string) reply {
	return reply{status: status, body: fmt.Sprintf(`{"error": {"code": %q, "message": %q}}`, code, msg)}
}

func fileReply(sha string, malicious int64) reply {
	return reply{status: 200, body: fmt.Sprintf(`{"data": {"id": %q, "type": "file", "links": {"self": "x"},
		"attributes": {"meaningful_name": "f-%s", "reputation": %d, "first_submission_date": 1600000000,
		"last_analysis_date": 1700000000, "last_analysis_stats": {"harmless": 1, "malicious": %d,
		"suspicious": 0, "undetected": 60, "type-unsupported": 3, "failure": 0}}}}`, sha, sha[:8], -malicious, malicious)}
}

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeVT is a local fake of the v3 files endpoint, written from the
// documented shapes (formats.md B.2). It checks X-Apikey like the real API:
// a missing header is 401 AuthenticationRequiredError, a wrong key 401
// WrongCredentialsError. Unknown hashes are 404 NotFoundError.
type fakeVT struct {
	srv *httptest.Server
	key string

	mu      sync.Mutex
	files   map[string]reply   // steady answers by hash
	script  map[string][]reply // answers consumed first, in order
	all     *reply             // when set, the answer to every request
	reqs    []string           // hashes requested, in order
	uris    []string           // request URIs
	apikeys []string           // X-Apikey values received
	hit     chan string        // gets each requested hash (buffered, never blocks)
}

func newFake(t testing.TB, key string) *fakeVT {
	f := &fakeVT{key: key, files: map[string]reply{}, script: map[string][]reply{}, hit: make(chan string, 1000)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVT) serve(w http.ResponseWriter, r *http.Request) {
	hash, ok := strings.CutPrefix(r.URL.Path, "/api/v3/files/")
	f.mu.Lock()
	f.reqs = append(f.reqs, hash)
	f.uris = append(f.uris, r.URL.RequestURI())
	f.apikeys = append(f.apikeys, r.Header.Get("X-Apikey"))
	var rep reply
	switch {
	case !ok || r.Method != http.MethodGet:
		rep = apiError(400, "BadRequestError", "bad path")
	case r.Header.Get("X-Apikey") == "":
		rep = apiError(401, "AuthenticationRequiredError", "X-Apikey header is missing")
	case r.Header.Get("X-Apikey") != f.key:
		rep = apiError(401, "WrongCredentialsError", "Wrong API key")
	case f.all != nil:
		rep = *f.all
	case len(f.script[hash]) > 0:
		rep = f.script[hash][0]
		f.script[hash] = f.script[hash][1:]
	default:
		var found bool
		if rep, found = f.files[hash]; !found {
			rep = apiError(404, "NotFoundError", fmt.Sprintf("File %q not found", hash))
		}
	}
	f.mu.Unlock()
	select {
	case f.hit <- hash:
	default:
	}
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.hijack {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	ct := rep.ctype
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(rep.status)
	if rep.body != "" {
		fmt.Fprint(w, rep.body)
	}
}

func (f *fakeVT) set(hash string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[hash] = r
}

func (f *fakeVT) queue(hash string, rs ...reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[hash] = append(f.script[hash], rs...)
}

func (f *fakeVT) setAll(r *reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = r
}

func (f *fakeVT) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// waitRequests waits until the fake has seen n requests and returns them.
func (f *fakeVT) waitRequests(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := f.requests(); len(r) >= n {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fake VirusTotal saw %d requests, want %d", len(f.requests()), n)
	return nil
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
	fake *fakeVT
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
	h := &harness{t: t, fake: newFake(t, testKey), logs: &testsupport.SyncBuffer{}, reg: &metrics.Registry{},
		out: &collector{ch: make(chan *audit.Event, 1000)},
		clk: newClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))}
	h.cfg = DefaultConfig()
	h.cfg.Enabled = true
	h.cfg.APIKey = testKey
	h.cfg.Host = h.fake.srv.URL
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
