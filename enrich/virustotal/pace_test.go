package virustotal

import (
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// TestBudgetPacing drives the budget with an injected clock through two
// UTC days with an endless backlog (each request sent as soon as next
// allows): with pace on, the public budget (4/min, 500/day) is spent
// evenly, 500 requests a day about 172.8 s apart (86.4 s for a day that
// starts at noon), never more than 4 in any minute nor 500 in a day;
// without pace the day is spent in its first ~2 hours.
func TestBudgetPacing(t *testing.T) {
	run := func(pace bool, start time.Time, days int) (perDay map[int64]int, gaps []time.Duration, maxPerMin int) {
		b := budget{perMin: 4, perDay: 500, perMonth: 0, pace: pace}
		perDay = map[int64]int{}
		var sent []time.Time
		end := nextMidnight(start).Add(time.Duration(days-1) * 24 * time.Hour)
		for now := start; ; {
			now = b.next(now)
			if !now.Before(end) {
				break
			}
			b.charge(now)
			perDay[dayOf(now)]++
			if n := len(sent); n > 0 && dayOf(sent[n-1]) == dayOf(now) {
				gaps = append(gaps, now.Sub(sent[n-1]))
			}
			sent = append(sent, now)
			inMin := 0
			for i := len(sent) - 1; i >= 0 && now.Sub(sent[i]) < time.Minute; i-- {
				inMin++
			}
			maxPerMin = max(maxPerMin, inMin)
		}
		return perDay, gaps, maxPerMin
	}
	midnight := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	perDay, gaps, maxPerMin := run(true, midnight, 2)
	if maxPerMin > 4 {
		t.Errorf("paced: %d requests in one minute", maxPerMin)
	}
	for d, n := range perDay {
		if n != 500 {
			t.Errorf("paced: day %d had %d requests, want the whole budget of 500", d, n)
		}
	}
	for _, g := range gaps {
		if g < 172*time.Second || g > 173*time.Second {
			t.Fatalf("paced: gap %v, want about 172.8s (86400s / 500)", g)
		}
	}
	// A day whose budget starts being used at noon spreads it over the half day left.
	perDay, gaps, _ = run(true, midnight.Add(12*time.Hour), 1)
	if n := perDay[dayOf(midnight)]; n != 500 {
		t.Errorf("paced from noon: %d requests, want 500", n)
	}
	for _, g := range gaps {
		if g < 86*time.Second || g > 87*time.Second {
			t.Fatalf("paced from noon: gap %v, want about 86.4s", g)
		}
	}
	// Unpaced, the same backlog spends the day by about 02:05.
	perDay, gaps, maxPerMin = run(false, midnight, 1)
	if perDay[dayOf(midnight)] != 500 || maxPerMin != 4 {
		t.Errorf("unpaced: %v requests, %d in a minute", perDay, maxPerMin)
	}
	var spent time.Duration
	for _, g := range gaps {
		spent += g
	}
	if spent > 3*time.Hour {
		t.Errorf("unpaced: the day budget took %v, want about 2h", spent)
	}
}

// TestPacedWorkerFollowsWeights: the worker under a paced budget and a
// fast clock sends one request per pacing step, never early, most
// sighted hash first (the weights Request adds, as the fleet service's
// sighting counts do).
func TestPacedWorkerFollowsWeights(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PerMinute, c.PerDay, c.PerMonth, c.Pace = 4, 10, 0, true })
	h.clk.Set(time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)) // 10 h to midnight: one request an hour
	h.e.Hold()
	weights := []int{3, 50, 1, 20, 7}
	for i, w := range weights {
		if res, _ := h.e.Request(fh256(sha(100+i)), audit.EventID{Node: "svc"}, w); res != nil {
			t.Fatalf("Request: %+v, want queued", res)
		}
	}
	h.e.Resume()
	want := []int{1, 3, 4, 0, 2} // by weight, heaviest first
	for step, i := range want {
		got := h.fake.WaitRequests(t, step+1)
		if got[step] != sha(100+i) {
			t.Fatalf("request %d went to %s, want %s (weight %d)", step, got[step][56:], sha(100 + i)[56:], weights[i])
		}
		time.Sleep(50 * time.Millisecond)
		if n := len(h.fake.Requests()); n != step+1 {
			t.Fatalf("%d requests before the pacing step, want %d", n, step+1)
		}
		// The next request is due (time to midnight) / (requests left + 1) later.
		h.clk.Advance(time.Hour)
		h.kick()
	}
}
