package virustotal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

func TestHitVerdictAndCache(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.Set(eicar, reply{Status: 200, Body: fixture(t, "file_eicar.json")})

	e1, e2 := ev(1, fh256(eicar)), ev(2, fh256(strings.ToUpper(eicar)))
	if r := h.enrich(e1); r.Status != StatusPending || r.Hash != eicar {
		t.Fatalf("first event: %+v, want pending", r)
	}
	h.enrich(e2) // may still be pending, or already a hit
	d := h.verdict()
	want := &audit.VTVerdict{Malicious: 62, Suspicious: 1, Harmless: 0, Undetected: 5, Reputation: -1234,
		ThreatLabel: "virus.eicar/test", MeaningfulName: "eicar.com", FirstSubmission: 1148301722,
		LastAnalysis: 1789003600, Link: "https://www.virustotal.com/gui/file/" + eicar}
	if d.VirusTotal.Status != StatusHit || d.VirusTotal.Hash != eicar || !reflect.DeepEqual(d.VirusTotal.VTVerdict, want) {
		t.Fatalf("verdict %+v %+v, want hit %+v", d.VirusTotal, d.VirusTotal.VTVerdict, want)
	}
	if d.ID != e1.ID {
		t.Errorf("verdict id %v, want the first waiting event %v", d.ID, e1.ID)
	}
	wantRel := []string{e1.ID.String()}
	if e2.VirusTotal.Status == StatusPending {
		wantRel = append(wantRel, e2.ID.String())
	}
	if !reflect.DeepEqual(d.Related, wantRel) {
		t.Errorf("related %v, want %v", d.Related, wantRel)
	}
	if len(d.Hashes) != 1 || d.Hashes[0].Hex != eicar || d.Hashes[0].Algo != "sha256" || d.Hashes[0].Path != "/usr/bin/x" {
		t.Errorf("verdict hashes %+v", d.Hashes)
	}

	r := h.enrich(ev(3, fh256(eicar)))
	if r.Status != StatusHit || !reflect.DeepEqual(r.VTVerdict, want) {
		t.Fatalf("cached: %+v, want hit %+v", r, want)
	}
	if r.VTVerdict == d.VirusTotal.VTVerdict {
		t.Error("events share a verdict value")
	}
	reqs := h.fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	uri, key := h.fake.URIs()[0], h.fake.APIKeys()[0]
	if uri != "/api/v3/files/"+eicar || key != testKey {
		t.Errorf("request %q with X-Apikey %q; want the key in the header only", uri, key)
	}
	if h.e.m.lookups[outFound].Value() != 1 || h.e.m.cacheHit.Value() < 1 || h.e.m.verdicts.Value() != 1 {
		t.Errorf("metrics: found=%d cache_hit=%d verdicts=%d", h.e.m.lookups[outFound].Value(),
			h.e.m.cacheHit.Value(), h.e.m.verdicts.Value())
	}
}

func TestCleanFileHasNoThreatLabel(t *testing.T) {
	h := newHarness(t, nil)
	clean := strings.Repeat("1", 64)
	h.fake.Set(clean, reply{Status: 200, Body: fixture(t, "file_clean.json")})
	h.enrich(ev(1, fh256(clean)))
	v := h.verdict().VirusTotal
	if v.Status != StatusHit || v.Malicious != 0 || v.Undetected != 61 || v.ThreatLabel != "" || v.MeaningfulName != "ls" {
		t.Fatalf("clean verdict %+v %+v", v, v.VTVerdict)
	}
}

func TestNotFound(t *testing.T) {
	h := newHarness(t, nil)
	unknown := sha(1)
	if r := h.enrich(ev(1, fh256(unknown))); r.Status != StatusPending {
		t.Fatalf("got %+v", r)
	}
	d := h.verdict()
	if d.VirusTotal.Status != StatusNotFound || d.VirusTotal.VTVerdict != nil {
		t.Fatalf("verdict %+v, want not_found", d.VirusTotal)
	}
	if r := h.enrich(ev(2, fh256(unknown))); r.Status != StatusNotFound {
		t.Fatalf("second event %+v, want cached not_found", r)
	}
	if n := len(h.fake.Requests()); n != 1 || h.e.m.lookups[outNotFound].Value() != 1 {
		t.Fatalf("%d requests, not_found=%d", n, h.e.m.lookups[outNotFound].Value())
	}
}

// TTLs per verdict class, checked through both the LRU and vt.db.
func TestCacheTTLPerClass(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.TTLNotFound, c.TTLClean, c.TTLMalicious = time.Hour, 3*time.Hour, 5*time.Hour
	})
	mal, clean, unknown := sha(1), sha(2), sha(3)
	h.fake.Set(mal, fileReply(mal, 5))
	h.fake.Set(clean, fileReply(clean, 0))
	for i, x := range []string{mal, clean, unknown} {
		h.enrich(ev(uint32(i), fh256(x)))
		h.verdict()
	}
	serial := uint32(10)
	check := func(when, x, want string) {
		t.Helper()
		serial++
		if got := h.enrich(ev(serial, fh256(x))).Status; got != want {
			t.Fatalf("%s: %s... is %s, want %s", when, x[:8], got, want)
		}
		if want == StatusPending {
			h.verdict() // the new lookup
		}
	}
	check("fresh", mal, StatusHit)
	check("fresh", clean, StatusHit)
	check("fresh", unknown, StatusNotFound)
	h.clk.Advance(61 * time.Minute)
	check("after 61m", mal, StatusHit)
	check("after 61m", clean, StatusHit)
	check("after 61m", unknown, StatusPending)
	h.clk.Advance(120 * time.Minute)
	check("after 181m", mal, StatusHit)
	check("after 181m", clean, StatusPending)
	h.clk.Advance(120 * time.Minute)
	check("after 301m", mal, StatusPending)
	if n := len(h.fake.Requests()); n != 6 {
		t.Fatalf("%d requests, want 6 (3 + one per expiry)", n)
	}
}

func TestSingleflight(t *testing.T) {
	h := newHarness(t, nil)
	x := sha(7)
	h.fake.Set(x, reply{Status: 200, Body: fileReply(x, 1).Body, Delay: 200 * time.Millisecond})
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := ev(uint32(1000+i), fh256(x))
			if err := h.e.Enrich(context.Background(), e); err != nil || e.VirusTotal.Status != StatusPending {
				t.Errorf("event %d: %v %+v", i, err, e.VirusTotal)
			}
		}()
	}
	wg.Wait()
	d := h.verdict()
	if len(d.Related) != n {
		t.Fatalf("verdict names %d events, want %d", len(d.Related), n)
	}
	seen := map[string]bool{}
	for _, id := range d.Related {
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("related ids not distinct: %v", d.Related)
	}
	if got := len(h.fake.Requests()); got != 1 {
		t.Fatalf("%d requests for one hash, want 1", got)
	}
}

// TestQuotaPausesWithoutStorm: a 429 the plugin's own counts do not
// explain (the day budget is far from used: another user of the key took
// the quota) pauses a minute, a second one in a row two minutes, and never
// the rest of the day; the 429s are not counted against the day.
func TestQuotaPausesWithoutStorm(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PerDay = 500 })
	a, b, c := sha(1), sha(2), sha(3)
	h.fake.Set(a, apiError(429, "QuotaExceededError", "Quota exceeded"))
	h.fake.Set(b, fileReply(b, 0))
	h.fake.Set(c, fileReply(c, 0))
	h.enrich(ev(1, fh256(a)))
	h.fake.WaitRequests(t, 1)
	time.Sleep(200 * time.Millisecond)
	if n := len(h.fake.Requests()); n != 1 {
		t.Fatalf("%d requests after one 429, want 1 (pause a minute)", n)
	}
	if r := h.enrich(ev(2, fh256(b))); r.Status != StatusPending || r.Reason != "" {
		t.Fatalf("during a minute pause: %+v, want plain pending", r)
	}
	h.clk.Advance(61 * time.Second)
	h.kick()
	h.fake.WaitRequests(t, 2) // a again (older, same priority): a second 429, two minutes
	time.Sleep(100 * time.Millisecond)
	if reqs := h.fake.Requests(); len(reqs) != 2 || reqs[1] != a {
		t.Fatalf("requests %v, want [a a]", reqs)
	}
	if r := h.enrich(ev(3, fh256(c))); r.Status != StatusPending || r.Reason != ReasonOverBudget {
		t.Fatalf("during the longer pause: %+v, want pending/over_budget", r)
	}
	h.clk.Advance(61 * time.Second)
	h.kick()
	time.Sleep(100 * time.Millisecond)
	if n := len(h.fake.Requests()); n != 2 {
		t.Fatalf("%d requests one minute into a two-minute pause, want 2", n)
	}
	h.fake.Set(a, fileReply(a, 0))
	h.clk.Advance(61 * time.Second) // 10:03, the same day
	h.kick()
	got := map[string]bool{}
	for range 3 {
		got[h.verdict().VirusTotal.Hash] = true
	}
	if !got[a] || !got[b] || !got[c] {
		t.Fatalf("verdicts after the pause: %v", got)
	}
	if q := h.e.m.lookups[outQuota].Value(); q != 2 {
		t.Fatalf("quota outcomes %d, want 2", q)
	}
	h.e.bmu.Lock()
	strikes, dayN := h.e.b.Strikes, h.e.b.DayN
	h.e.bmu.Unlock()
	if strikes != 0 || dayN != 3 {
		t.Fatalf("after success: strikes %d day count %d, want 0 and 3", strikes, dayN)
	}
}

// TestTimeoutIsCharged: a request that timed out after it was sent stays
// counted in the day and month (VirusTotal may have counted it); one whose
// connection could not be made is refunded.
func TestTimeoutIsCharged(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	a := sha(1)
	h.fake.Queue(a, reply{Status: 200, Body: fileReply(a, 0).Body, Delay: time.Second})
	h.fake.Set(a, fileReply(a, 0))
	h.enrich(ev(1, fh256(a)))
	if v := h.verdict(); v.VirusTotal.Status != StatusHit {
		t.Fatalf("verdict %+v, want a hit after the retry", v.VirusTotal)
	}
	h.e.bmu.Lock()
	dayN, monthN := h.e.b.DayN, h.e.b.MonthN
	h.e.bmu.Unlock()
	if dayN != 2 || monthN != 2 {
		t.Fatalf("day %d month %d after a timeout and a hit, want 2 and 2", dayN, monthN)
	}
	if notSent(context.DeadlineExceeded) || !notSent(&net.OpError{Op: "dial", Err: errors.New("refused")}) {
		t.Fatal("notSent: a timeout is not a request that never left; a failed dial is")
	}
}

func TestAuthFailureDisables(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  *reply // nil: use a wrong key
	}{
		{"401 WrongCredentialsError", nil},
		{"401 AuthenticationRequiredError", &reply{Status: 401, Body: `{"error": {"code": "AuthenticationRequiredError", "message": "X-Apikey header is missing"}}`}},
		{"403 ForbiddenError", &reply{Status: 403, Body: `{"error": {"code": "ForbiddenError", "message": "You are not allowed to perform the requested operation"}}`}},
		{"403 without a body", &reply{Status: 403}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			good := sha(1)
			h.fake.Set(good, fileReply(good, 3))
			h.enrich(ev(1, fh256(good)))
			h.verdict()
			if tc.rep == nil {
				h.fake.SetKey("another key")
			} else {
				h.fake.SetAll(tc.rep)
			}
			if r := h.enrich(ev(2, fh256(sha(2)))); r.Status != StatusPending {
				t.Fatalf("%+v", r)
			}
			h.fake.WaitRequests(t, 2)
			deadline := time.Now().Add(2 * time.Second)
			for !h.e.disabled.Load() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			for i := range 5 {
				if r := h.enrich(ev(uint32(10+i), fh256(sha(10+i)))); r.Status != StatusSkipped || r.Reason != ReasonDisabled {
					t.Fatalf("after the key was rejected: %+v, want skipped/disabled", r)
				}
			}
			if r := h.enrich(ev(3, fh256(sha(2)))); r.Status != StatusSkipped || r.Reason != ReasonDisabled {
				t.Fatalf("queued hash after rejection: %+v", r)
			}
			if r := h.enrich(ev(4, fh256(good))); r.Status != StatusHit {
				t.Fatalf("cached verdicts still answer: %+v", r)
			}
			time.Sleep(100 * time.Millisecond)
			if n := len(h.fake.Requests()); n != 2 {
				t.Fatalf("%d requests, want 2 (no lookups once disabled)", n)
			}
			logs := h.logs.String()
			if n := strings.Count(logs, "level=ERROR"); n != 1 || !strings.Contains(logs, "API KEY WAS REJECTED") {
				t.Fatalf("want exactly one loud ERROR line, log:\n%s", logs)
			}
			if h.queueDepth() != 1 {
				t.Fatalf("the rejected hash should stay queued for the next run, depth %d", h.queueDepth())
			}
		})
	}
}

func TestTransientFailuresRetry(t *testing.T) {
	slowTimeout := func(c *Config) { c.Timeout = 150 * time.Millisecond }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		fail reply
	}{
		{"500 html", nil, reply{Status: 500, ContentType: "text/html", Body: "<html>oops</html>"}},
		{"503 TransientError", nil, apiError(503, "TransientError", "try again")},
		{"504 DeadlineExceededError", nil, apiError(504, "DeadlineExceededError", "deadline")},
		{"502 empty", nil, reply{Status: 502}},
		{"200 not json", nil, reply{Status: 200, ContentType: "text/plain", Body: "hello"}},
		{"dropped connection", nil, reply{Hijack: true}},
		{"slow answer", slowTimeout, reply{Status: 200, Body: fileReply(sha(5), 0).Body, Delay: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.mod)
			x := sha(5)
			h.fake.Queue(x, tc.fail, tc.fail)
			h.fake.Set(x, fileReply(x, 2))
			start := time.Now()
			h.enrich(ev(1, fh256(x)))
			d := h.verdict()
			if d.VirusTotal.Status != StatusHit || d.VirusTotal.Malicious != 2 {
				t.Fatalf("verdict %+v after transient failures, want hit", d.VirusTotal)
			}
			if tr := h.e.m.lookups[outTransient].Value(); tr < 1 || tr > 2 {
				t.Fatalf("transient outcomes %d, want 1..2", tr)
			}
			if el := time.Since(start); el > 4*time.Second {
				t.Fatalf("took %v", el)
			}
			if !strings.Contains(h.logs.String(), "will retry") {
				t.Fatalf("no retry logged:\n%s", h.logs.String())
			}
		})
	}
	t.Run("gives up after max attempts", func(t *testing.T) {
		h := newHarness(t, nil)
		x := sha(6)
		h.fake.Set(x, apiError(503, "TransientError", "down"))
		h.enrich(ev(1, fh256(x)))
		d := h.verdict()
		if d.VirusTotal.Status != StatusError || d.VirusTotal.Reason != "TransientError" {
			t.Fatalf("verdict %+v, want error/TransientError", d.VirusTotal)
		}
		if n := len(h.fake.Requests()); n != h.tune.maxAttempts {
			t.Fatalf("%d requests, want %d", n, h.tune.maxAttempts)
		}
		if h.queueDepth() != 0 {
			t.Fatal("failed hash still queued")
		}
		// Errors are not cached: a later event queues the hash again.
		if r := h.enrich(ev(2, fh256(x))); r.Status != StatusPending {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("backoff spaces retries", func(t *testing.T) {
		h := newHarness(t, nil)
		h.tune.backoffBase, h.tune.backoffMax = 600*time.Millisecond, 600*time.Millisecond
		h.restart()
		x := sha(8)
		h.fake.Set(x, apiError(500, "InternalError", "boom"))
		h.enrich(ev(1, fh256(x)))
		h.fake.WaitRequests(t, 1)
		time.Sleep(100 * time.Millisecond)
		if n := len(h.fake.Requests()); n != 1 {
			t.Fatalf("%d requests within 100ms of a failure, want 1 (backoff 600ms)", n)
		}
	})
}

func TestPermanentAPIError(t *testing.T) {
	h := newHarness(t, nil)
	x := sha(9)
	h.fake.Set(x, apiError(400, "InvalidArgumentError", "bad hash"))
	h.enrich(ev(1, fh256(x)))
	d := h.verdict()
	if d.VirusTotal.Status != StatusError || d.VirusTotal.Reason != "InvalidArgumentError" {
		t.Fatalf("%+v", d.VirusTotal)
	}
	if n := len(h.fake.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1 (no retry)", n)
	}
}

func TestBudgetEnforced(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PerMinute, c.PerDay, c.PerMonth = 2, 3, 1000 })
	h.clk.Set(time.Date(2026, 11, 25, 23, 50, 0, 0, time.UTC))
	for i := range 3 {
		h.enrich(ev(uint32(i), fh256(sha(i))))
	}
	h.fake.WaitRequests(t, 2)
	time.Sleep(150 * time.Millisecond)
	if n := len(h.fake.Requests()); n != 2 {
		t.Fatalf("%d requests in the first minute, want 2", n)
	}
	snap := h.reg.Snapshot()
	if snap[`audisp_enrich_vt_budget_remaining{window="minute"}`] != 0 ||
		snap[`audisp_enrich_vt_budget_remaining{window="day"}`] != 1 ||
		snap[`audisp_enrich_vt_queue_depth`] != 1 {
		t.Fatalf("metrics %v", snap)
	}
	h.clk.Advance(61 * time.Second)
	h.kick()
	h.fake.WaitRequests(t, 3)
	if r := h.enrich(ev(10, fh256(sha(10)))); r.Status != StatusPending || r.Reason != ReasonOverBudget {
		t.Fatalf("day used up: %+v, want pending/over_budget", r)
	}
	h.clk.Advance(5 * time.Minute)
	h.kick()
	time.Sleep(100 * time.Millisecond)
	if n := len(h.fake.Requests()); n != 3 {
		t.Fatalf("%d requests with the day used up, want 3", n)
	}
	h.clk.Set(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	h.kick()
	h.fake.WaitRequests(t, 4)
}

func TestBudgetWindows(t *testing.T) {
	// The budget expects time to move forward only.
	t0 := time.Date(2026, 11, 30, 23, 58, 0, 0, time.UTC)
	b := budget{perMin: 4, perDay: 6, perMonth: 7}
	for i := range 4 {
		b.charge(t0.Add(time.Duration(i) * 10 * time.Second))
	}
	at := t0.Add(35 * time.Second)
	if got := b.next(at); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("minute window: next %v, want %v", got, t0.Add(time.Minute))
	}
	if m, d, mo := b.remaining(at); m != 0 || d != 2 || mo != 3 {
		t.Fatalf("remaining %d %d %d", m, d, mo)
	}
	if got := b.next(t0.Add(61 * time.Second)); !got.Equal(t0.Add(61 * time.Second)) {
		t.Fatalf("after the sliding minute: next %v", got)
	}
	b.charge(t0.Add(61 * time.Second))
	b.charge(t0.Add(62 * time.Second))
	// The day is used up at 23:59:02; the minute window alone would allow
	// 23:59:20, the day waits for 00:00 UTC (also a new month).
	midnight := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if got := b.next(t0.Add(63 * time.Second)); !got.Equal(midnight) {
		t.Fatalf("day window: next %v, want %v", got, midnight)
	}
	if got := b.overUntil(t0.Add(63 * time.Second)); !got.Equal(midnight) {
		t.Fatalf("overUntil %v, want midnight", got)
	}
	if m, d, mo := b.remaining(midnight.Add(2 * time.Minute)); m != 4 || d != 6 || mo != 7 {
		t.Fatalf("after the resets: %d %d %d", m, d, mo)
	}
	// Month: exhausted mid-month, resets on the 1st.
	b2 := budget{perMonth: 2}
	mid := time.Date(2026, 2, 14, 12, 0, 0, 0, time.UTC)
	b2.charge(mid)
	b2.charge(mid)
	if got := b2.next(mid); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("month window: next %v", got)
	}
	b2.refund(mid)
	if got := b2.next(mid); !got.Equal(mid) {
		t.Fatalf("after a refund: next %v", got)
	}
	// 429s that the plugin's own counts do not explain (another user of
	// the key): a minute, doubling, capped at an hour; never the day or
	// the month, and the counts stay as they were.
	b3 := budget{perMin: 4, perDay: 500, perMonth: 15500}
	when := mid
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour} {
		u, w := b3.quotaExceeded(when)
		if w != "unknown" || !u.Equal(when.Add(want)) {
			t.Fatalf("429 number %d: pause until %v (%s), want %v", i+1, u, w, when.Add(want))
		}
		when = u
	}
	if b3.DayN != 0 || b3.MonthN != 0 {
		t.Fatalf("429s changed the counts: day %d month %d", b3.DayN, b3.MonthN)
	}
	// The plugin's counts say which window ran out: this request used the
	// day's last one (the 429 refunded it), then the month's, then the
	// minute's.
	bd := budget{perDay: 3, perMonth: 100}
	for range 3 {
		bd.charge(mid)
	}
	bd.refund(mid)
	if u, w := bd.quotaExceeded(mid); w != "day" || !u.Equal(time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("day used up: %v %s", u, w)
	}
	if got := bd.overUntil(mid); !got.Equal(time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("a 429 blamed on the day: overUntil %v, want midnight", got)
	}
	bm := budget{perDay: 100, perMonth: 2}
	bm.charge(mid)
	bm.charge(mid)
	bm.refund(mid)
	if u, w := bm.quotaExceeded(mid); w != "month" || !u.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("month used up: %v %s", u, w)
	}
	bn := budget{perMin: 2, perDay: 100}
	bn.charge(mid)
	bn.charge(mid.Add(10 * time.Second))
	bn.refund(mid.Add(10 * time.Second))
	if u, w := bn.quotaExceeded(mid.Add(10 * time.Second)); w != "minute" || !u.Equal(mid.Add(time.Minute)) {
		t.Fatalf("minute used up: %v %s", u, w)
	}
	b3.answered()
	if b3.Strikes != 0 {
		t.Fatal("an answer must reset the strikes")
	}
	// No limits.
	b4 := budget{}
	for range 100 {
		b4.charge(mid)
	}
	if m, d, mo := b4.remaining(mid); b4.next(mid) != mid || m != -1 || d != -1 || mo != -1 {
		t.Fatal("zero limits must mean unlimited")
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PerMinute = 1 })
	a, b, c := sha(1), sha(2), sha(3)
	h.fake.Set(a, fileReply(a, 4))
	h.fake.Set(b, fileReply(b, 0))
	h.enrich(ev(1, fh256(a)))
	h.verdict()
	eb1, eb2, ec := ev(2, fh256(b)), ev(3, fh256(b)), ev(4, fh256(c))
	eb2.Severity = 3
	h.enrich(eb1)
	h.enrich(eb2)
	h.enrich(ec)
	if h.queueDepth() != 2 {
		t.Fatalf("queue depth %d, want 2", h.queueDepth())
	}
	h.restart()

	if n := len(h.fake.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if r := h.enrich(ev(5, fh256(a))); r.Status != StatusHit || r.Malicious != 4 {
		t.Fatalf("after restart, cached verdict: %+v", r)
	}
	if h.e.m.cacheHit.Value() != 1 {
		t.Fatal("the hit must come from the restored disk cache")
	}
	if h.queueDepth() != 2 {
		t.Fatalf("restored queue depth %d, want 2", h.queueDepth())
	}
	h.e.bmu.Lock()
	m, d, _ := h.e.b.remaining(h.clk.Now())
	h.e.bmu.Unlock()
	if m != 0 || d != h.cfg.PerDay-1 {
		t.Fatalf("restored budget: minute %d day %d, want 0 and %d", m, d, h.cfg.PerDay-1)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.fake.Requests()); n != 1 {
		t.Fatal("a restart must not reset the minute budget")
	}
	h.clk.Advance(61 * time.Second)
	h.kick()
	v := h.verdict()
	// b went first: one of its events has severity 3.
	if v.VirusTotal.Hash != b || !reflect.DeepEqual(v.Related, []string{eb1.ID.String(), eb2.ID.String()}) || v.ID != eb1.ID {
		t.Fatalf("verdict after restart: %+v related %v", v.VirusTotal, v.Related)
	}
	h.clk.Advance(61 * time.Second)
	h.kick()
	if v := h.verdict(); v.VirusTotal.Hash != c || v.VirusTotal.Status != StatusNotFound ||
		!reflect.DeepEqual(v.Related, []string{ec.ID.String()}) {
		t.Fatalf("second verdict after restart: %+v %v", v.VirusTotal, v.Related)
	}
	h.restart()
	if h.queueDepth() != 0 {
		t.Fatal("finished lookups must leave the stored queue")
	}
}

func TestPriorityOrder(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PerMinute = 1 })
	h.enrich(ev(1, fh256(sha(100)))) // uses the minute
	h.verdict()
	mk := func(serial uint32, x string, f func(*audit.Event)) {
		e := ev(serial, fh256(x))
		if f != nil {
			f(e)
		}
		h.enrich(e)
	}
	mk(2, sha(1), nil)
	mk(3, sha(2), nil)
	mk(4, sha(3), func(e *audit.Event) { e.Techniques = []audit.Technique{{ID: "T1059"}} })
	mk(5, sha(4), func(e *audit.Event) { e.Severity = 3 })
	mk(6, sha(5), func(e *audit.Event) { e.Hunt = []audit.HuntHit{{Rule: "r"}} })
	tmp := audit.FileHash{Path: "/dev/shm/.x", Algo: "sha256", Hex: sha(6)}
	h.enrich(ev(7, tmp))
	mk(8, sha(7), func(e *audit.Event) { e.Blocklist = []audit.ListHit{{List: "l"}} })
	mk(9, sha(1), func(e *audit.Event) { e.Severity = 4 }) // raises an already queued hash
	var order []string
	for range 7 {
		h.clk.Advance(61 * time.Second)
		h.kick()
		order = append(order, h.verdict().VirusTotal.Hash)
	}
	want := []string{sha(1), sha(4), sha(5), sha(7), sha(3), sha(6), sha(2)}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("lookup order\n got %v\nwant %v", order, want)
	}
}

func TestMaxWait(t *testing.T) {
	t.Run("answer within max_wait", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxWait = 2 * time.Second })
		x := sha(1)
		h.fake.Set(x, fileReply(x, 1))
		if r := h.enrich(ev(1, fh256(x))); r.Status != StatusHit || r.Malicious != 1 {
			t.Fatalf("%+v, want a hit within max_wait", r)
		}
		// Not found answers arrive the same way.
		if r := h.enrich(ev(2, fh256(sha(2)))); r.Status != StatusNotFound {
			t.Fatalf("%+v, want not_found within max_wait", r)
		}
		h.noVerdict(150 * time.Millisecond) // nobody went on as pending
	})
	t.Run("slow answer", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxWait = 50 * time.Millisecond })
		x := sha(1)
		h.fake.Set(x, reply{Status: 200, Body: fileReply(x, 1).Body, Delay: 1500 * time.Millisecond})
		start := time.Now()
		e := ev(1, fh256(x))
		if r := h.enrich(e); r.Status != StatusPending {
			t.Fatalf("%+v, want pending", r)
		}
		if el := time.Since(start); el < 40*time.Millisecond || el > 800*time.Millisecond {
			t.Fatalf("waited %v, want about 50ms", el)
		}
		if d := h.verdict(); !reflect.DeepEqual(d.Related, []string{e.ID.String()}) {
			t.Fatalf("related %v", d.Related)
		}
	})
	t.Run("context deadline bounds the wait", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxWait = 5 * time.Second })
		x := sha(1)
		h.fake.Set(x, reply{Status: 200, Body: fileReply(x, 1).Body, Delay: 2 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
		defer cancel()
		start := time.Now()
		e := ev(1, fh256(x))
		if err := h.e.Enrich(ctx, e); err != nil || e.VirusTotal.Status != StatusPending {
			t.Fatalf("%v %+v", err, e.VirusTotal)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("Enrich held the event %v past its context", el)
		}
	})
}

func TestSkips(t *testing.T) {
	h := newHarness(t, nil)
	if r := h.enrich(ev(1)); r != nil {
		t.Fatalf("event without hashes got %+v", r)
	}
	e := ev(2, audit.FileHash{Algo: "sha512", Hex: strings.Repeat("a", 128)})
	if r := h.enrich(e); r.Status != StatusSkipped || r.Reason != ReasonNoHash {
		t.Fatalf("sha512 only: %+v", r)
	}
	e = ev(3, fh256(sha(1)))
	e.Allowlisted = []audit.ListHit{{List: "os", Hash: sha(1)}}
	if r := h.enrich(e); r.Status != StatusSkipped || r.Reason != ReasonAllowlisted || r.Hash != sha(1) {
		t.Fatalf("allowlisted: %+v", r)
	}
	// A file the package database vouches for is not looked up; the
	// other package statuses are.
	e = ev(3, fh256(sha(3)))
	e.Package = &audit.PackageResult{Status: packages.StatusPackage, Manager: "dpkg", Name: "coreutils"}
	if r := h.enrich(e); r.Status != StatusSkipped || r.Reason != ReasonPackage || r.Hash != sha(3) {
		t.Fatalf("package: %+v", r)
	}
	// sha1 beats md5; upper case is folded.
	md5 := strings.Repeat("A", 32)
	sha1 := strings.Repeat("B", 40)
	e = ev(4, audit.FileHash{Algo: "md5", Hex: md5}, audit.FileHash{Algo: "SHA1", Hex: sha1})
	if r := h.enrich(e); r.Status != StatusPending || r.Hash != strings.ToLower(sha1) {
		t.Fatalf("sha1 preferred: %+v", r)
	}
	if reqs := h.fake.WaitRequests(t, 1); reqs[0] != strings.ToLower(sha1) {
		t.Fatalf("requested %v", reqs)
	}
	if h.e.m.skipped[ReasonAllowlisted].Value() != 1 || h.e.m.skipped[ReasonNoHash].Value() != 1 || h.e.m.skipped[ReasonPackage].Value() != 1 {
		t.Fatal("skip counters")
	}

	off, err := New(DefaultConfig(), nil, nil, nil) // disabled by default
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if err := off.Enrich(context.Background(), e); err != nil || e.VirusTotal.Status != StatusSkipped || e.VirusTotal.Reason != ReasonDisabled {
		t.Fatalf("disabled enricher: %v %+v", err, e.VirusTotal)
	}
}

func TestQueueBound(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PerMinute, c.QueueSize = 1, 2 })
	h.enrich(ev(1, fh256(sha(100))))
	h.verdict()
	h.enrich(ev(2, fh256(sha(1))))
	e3 := ev(3, fh256(sha(2)))
	h.enrich(e3)
	if r := h.enrich(ev(4, fh256(sha(3)))); r.Status != StatusSkipped || r.Reason != ReasonQueueFull {
		t.Fatalf("full queue, same priority: %+v", r)
	}
	hi := ev(5, fh256(sha(4)))
	hi.Severity = 3
	if r := h.enrich(hi); r.Status != StatusPending {
		t.Fatalf("urgent hash: %+v", r)
	}
	d := h.verdict() // the evicted hash tells its waiter
	if d.VirusTotal.Hash != sha(2) || d.VirusTotal.Status != StatusSkipped || d.VirusTotal.Reason != ReasonQueueFull ||
		!reflect.DeepEqual(d.Related, []string{e3.ID.String()}) {
		t.Fatalf("eviction verdict %+v %v", d.VirusTotal, d.Related)
	}
	if h.queueDepth() != 2 {
		t.Fatalf("depth %d", h.queueDepth())
	}
}

func TestCloseIsPrompt(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Timeout = 30 * time.Second })
	x := sha(1)
	h.fake.Set(x, reply{Status: 200, Body: fileReply(x, 0).Body, Delay: 20 * time.Second})
	h.enrich(ev(1, fh256(x)))
	h.fake.WaitRequests(t, 1)
	start := time.Now()
	if err := h.e.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took %v with a request in flight", el)
	}
	if err := h.e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	st, err := openStore(h.cfg.StateDir, h.logger())
	if err != nil {
		t.Fatal(err)
	}
	items, _, err := st.loadQueue()
	st.close()
	if err != nil || len(items) != 1 || items[0].Hash != x {
		t.Fatalf("the aborted lookup must stay queued: %v %+v", err, items)
	}
	h.fake.Set(x, fileReply(x, 0))
	h.start()
	if d := h.verdict(); d.VirusTotal.Hash != x || d.Related[0] != ev(1).ID.String() {
		t.Fatalf("%+v %v", d.VirusTotal, d.Related)
	}
}

func TestDamagedState(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFile), []byte("this is not a bbolt file, not at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.StateDir = dir })
	if !strings.Contains(h.logs.String(), "moving it aside") {
		t.Fatalf("log:\n%s", h.logs.String())
	}
	m, _ := filepath.Glob(filepath.Join(dir, DBFile+".corrupt-*"))
	if len(m) != 1 {
		t.Fatalf("moved-aside files: %v", m)
	}
	// A damaged queue record is dropped with a warning; the others load.
	h.enrich(ev(1, fh256(sha(1))))
	h.verdict()
	h.cfg.PerMinute = 1
	h.restart()
	h.enrich(ev(2, fh256(sha(2))))
	if err := h.e.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(dir, h.logger())
	if err != nil {
		t.Fatal(err)
	}
	err = st.apply(write{items: map[string][]byte{sha(3): []byte("{broken"), sha(4): []byte(`{"hash":"` + sha(5) + `"}`)}})
	st.close()
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	if h.queueDepth() != 1 || strings.Count(h.logs.String(), "dropped a damaged queue record") != 2 {
		t.Fatalf("depth %d, log:\n%s", h.queueDepth(), h.logs.String())
	}
}

func TestSecondInstanceRefused(t *testing.T) {
	h := newHarness(t, nil)
	_, err := newEnricher(h.cfg, h.out, h.logger(), h.tune, nil)
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second enricher on the same state dir: %v", err)
	}
}

// TestCloseKeepsCounters: Close removes the gauges read from the closed
// enricher and keeps the counters, which an enricher built later with the
// same registry (a reload that changed [enrich.virustotal]) continues.
func TestCloseKeepsCounters(t *testing.T) {
	h := newHarness(t, nil)
	h.enrich(ev(1, fh256(sha(1))))
	if _, ok := h.reg.Snapshot()[`audisp_enrich_vt_queue_depth`]; !ok {
		t.Fatal("queue depth not registered")
	}
	h.e.Close()
	snap := h.reg.Snapshot()
	for k := range snap {
		if strings.HasPrefix(k, "audisp_enrich_vt_queue_depth") || strings.HasPrefix(k, "audisp_enrich_vt_budget_remaining") {
			t.Fatalf("%s still registered after Close", k)
		}
	}
	miss := snap[`audisp_enrich_vt_cache_total{result="miss"}`]
	if miss != 1 {
		t.Fatalf("cache misses %g after Close, want the 1 counted", miss)
	}
	h.start()
	h.enrich(ev(2, fh256(sha(2))))
	if got := h.reg.Snapshot()[`audisp_enrich_vt_cache_total{result="miss"}`]; got != 2 {
		t.Fatalf("cache misses %g after a new enricher, want 2 (continued)", got)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"key and file":       func(c *Config) { c.APIKey, c.APIKeyFile = "k", "/f" },
		"bad host":           func(c *Config) { c.Host = "ftp://x" },
		"host with path":     func(c *Config) { c.Host = "https://x/api/v3" },
		"host with userinfo": func(c *Config) { c.Host = "https://u:p@x" },
		"zero timeout":       func(c *Config) { c.Timeout = 0 },
		"negative max_wait":  func(c *Config) { c.MaxWait = -1 },
		"negative budget":    func(c *Config) { c.PerDay = -1 },
		"zero cache":         func(c *Config) { c.CacheSize = 0 },
		"zero ttl":           func(c *Config) { c.TTLNotFound = 0 },
		"zero queue":         func(c *Config) { c.QueueSize = 0 },
		"enabled no state":   func(c *Config) { c.Enabled, c.StateDir = true, "" },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestKeySources(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		env     string
		want    string // key, or "" for an error
		errHas  string
		warning bool
	}{
		{name: "config", cfg: Config{APIKey: " k1 "}, want: "k1"},
		{name: "file 0600", cfg: Config{APIKeyFile: file("a", 0o600, "k2\n")}, want: "k2"},
		{name: "file 0400", cfg: Config{APIKeyFile: file("b", 0o400, "k3")}, want: "k3"},
		{name: "file 0640", cfg: Config{APIKeyFile: file("h", 0o640, "k11\n")}, want: "k11"},
		{name: "file 0644 warns", cfg: Config{APIKeyFile: file("c", 0o644, "k4\n")}, want: "k4", warning: true},
		{name: "file 0604 warns", cfg: Config{APIKeyFile: file("i", 0o604, "k12\n")}, want: "k12", warning: true},
		{name: "file 0664 refused", cfg: Config{APIKeyFile: file("d", 0o664, "k5")}, errHas: "group- or world-writable"},
		{name: "file 0606 refused", cfg: Config{APIKeyFile: file("e", 0o606, "k5")}, errHas: "group- or world-writable"},
		{name: "missing file", cfg: Config{APIKeyFile: filepath.Join(dir, "nope")}, errHas: "no such file"},
		{name: "directory", cfg: Config{APIKeyFile: dir}, errHas: "not a regular file"},
		{name: "two words", cfg: Config{APIKeyFile: file("f", 0o600, "k6 k7\n")}, errHas: "whitespace"},
		{name: "huge file", cfg: Config{APIKeyFile: file("g", 0o600, strings.Repeat("k", 5000))}, errHas: "larger than"},
		{name: "environment", env: "k8", want: "k8"},
		{name: "config beats environment", cfg: Config{APIKey: "k9"}, env: "k10", want: "k9"},
		{name: "nothing", errHas: "no API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvAPIKey, tc.env)
			logs := &testsupport.SyncBuffer{}
			key, err := loadKey(&tc.cfg, slog.New(slog.NewTextHandler(logs, nil)))
			if tc.want != "" {
				if err != nil || key != tc.want {
					t.Fatalf("key %q err %v, want %q", key, err, tc.want)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err %v, want one containing %q", err, tc.errHas)
			}
			if got := strings.Contains(logs.String(), "readable by others; make it root's, group the service user's, mode 0640"); got != tc.warning {
				t.Fatalf("warning logged %v, want %v: %s", got, tc.warning, logs.String())
			}
		})
	}
}

// TestSecretsNeverLeak provokes every failure mode against a hostile fake
// that echoes the key back in its error messages and codes, then greps the
// log, every returned error, every event and verdict, and the printed
// config for the key.
func TestSecretsNeverLeak(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Timeout = 150 * time.Millisecond })
	k := testKey
	echo := func(status int, code string) reply {
		return apiError(status, code, "you sent X-Apikey "+k)
	}
	hostile := []reply{
		echo(404, "NotFoundError"),
		echo(429, "QuotaExceededError"),
		echo(503, "TransientError"),
		{Status: 500, ContentType: "text/html", Body: "<p>" + k + "</p>"},
		{Status: 502},
		{Hijack: true},
		{Status: 200, Body: fileReply(sha(0), 0).Body, Delay: time.Second},
		apiError(400, "Bad"+k, "code carries the key"),
		echo(400, "InvalidArgumentError"),
	}
	var results []*audit.VTResult
	for i, r := range hostile {
		x := sha(i + 1)
		h.fake.Queue(x, r, r, r)
		e := ev(uint32(i+1), fh256(x))
		results = append(results, h.enrich(e))
	}
	// Walk through the 429 pauses until every hash settled.
	deadline := time.Now().Add(10 * time.Second)
	for len(h.out.all()) < len(hostile) && time.Now().Before(deadline) {
		h.clk.Advance(25 * time.Hour)
		h.kick()
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(h.out.all()); n != len(hostile) {
		t.Fatalf("%d verdicts, want %d", n, len(hostile))
	}
	// Last: the key is rejected, with the key echoed.
	h.fake.SetAll(&reply{Status: 401, Body: fmt.Sprintf(`{"error":{"code":"WrongCredentialsError","message":"bad key %s"}}`, k)})
	h.enrich(ev(100, fh256(sha(100))))
	deadline = time.Now().Add(5 * time.Second)
	for !h.e.disabled.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	results = append(results, h.enrich(ev(101, fh256(sha(101)))))
	h.e.Close()

	var texts []string
	texts = append(texts, h.logs.String())
	for _, r := range results {
		texts = append(texts, fmt.Sprintf("%+v", *r))
	}
	for _, d := range h.out.all() {
		texts = append(texts, fmt.Sprintf("%+v %+v", *d, *d.VirusTotal))
		if d.VirusTotal.VTVerdict != nil {
			texts = append(texts, fmt.Sprintf("%+v", *d.VirusTotal.VTVerdict))
		}
	}
	cfg := h.cfg
	texts = append(texts, fmt.Sprintf("%v %+v %s", cfg, cfg, cfg))
	cl := &testsupport.SyncBuffer{}
	slog.New(slog.NewJSONHandler(cl, nil)).Info("config", "cfg", cfg)
	texts = append(texts, cl.String())
	// Errors from New and the key loader.
	bad := cfg
	bad.APIKey, bad.APIKeyFile = "", filepath.Join(t.TempDir(), "key")
	os.WriteFile(bad.APIKeyFile, []byte(k+"\n"), 0o666)
	os.Chmod(bad.APIKeyFile, 0o666)
	if _, err := New(bad, h.out, h.logger(), nil); err == nil {
		t.Fatal("world-writable key file accepted")
	} else {
		texts = append(texts, err.Error())
	}
	bad.APIKeyFile = ""
	bad.APIKey = k + " " + k
	if _, err := New(bad, h.out, h.logger(), nil); err == nil {
		t.Fatal("key with a space accepted")
	} else {
		texts = append(texts, err.Error())
	}

	for i, s := range texts {
		if strings.Contains(s, k) || strings.Contains(s, k[:16]) {
			t.Errorf("text %d leaks the key:\n%s", i, s)
		}
	}
	if !strings.Contains(h.logs.String(), redacted) {
		t.Error("the hostile answers never reached the log: the test did not exercise redaction")
	}
	// The key did travel, in the header.
	for _, u := range h.fake.URIs() {
		if strings.Contains(u, k) {
			t.Errorf("key in URL %s", u)
		}
	}
	if h.fake.APIKeys()[0] != k {
		t.Error("the key was not sent in X-Apikey")
	}
}

// TestPoolDeadlineCapsMaxWait: in the enrichment pool, an uncached lookup
// holds its event no longer than the pool's timeout, whatever max_wait
// says (docs/configuration.md: enrich.timeout caps max_wait). The pool
// used to pass a context without a deadline, so the event waited for the
// slow answer.
func TestPoolDeadlineCapsMaxWait(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxWait = 5 * time.Second })
	x := sha(1)
	h.fake.Set(x, reply{Status: 200, Body: fileReply(x, 1).Body, Delay: 2 * time.Second})
	out := make(chan *audit.Event, 1)
	p := enrich.NewPool([]enrich.Enricher{h.e}, 1, 4, 80*time.Millisecond, &metrics.Registry{}, nil,
		func(ev *audit.Event, _ []byte) { out <- ev })
	defer p.Close()
	start := time.Now()
	p.Submit(ev(1, fh256(x)))
	got := <-out
	if el := time.Since(start); el > time.Second {
		t.Fatalf("the event waited %v in the pool; want about the pool's 80ms timeout", el)
	}
	if got.VirusTotal == nil || got.VirusTotal.Status != StatusPending {
		t.Fatalf("status %+v, want pending", got.VirusTotal)
	}
}

// TestStoreLinkNotFollowed: a link planted as vt.db (the service user owns
// the state directory; the plugin opens the cache as root) is not opened
// through: the file it names keeps its content, the link is moved aside
// and an empty cache takes its place.
func TestStoreLinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil { // another account may write here, as in the service user's state_dir
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, DBFile)); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	if b, err := os.ReadFile(victim); err != nil || len(b) != 0 {
		t.Fatalf("the linked file holds %d bytes (%v), want it untouched and empty", len(b), err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, DBFile)); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s: %v %v, want a new regular file", DBFile, fi, err)
	}
}
