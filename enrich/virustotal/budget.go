package virustotal

import "time"

// budget counts requests against the minute, day and month quotas and holds
// the pause imposed by 429 answers. It is not safe for concurrent use; the
// Enricher guards it with a mutex. The exported fields are its persisted form.
//
// The minute window slides (VirusTotal: "at most 4 requests in any given 1
// minute time frame"); the day window is the UTC calendar day and the month
// window the UTC calendar month.
type budget struct {
	perMin, perDay, perMonth int
	pace                     bool // spread the day budget evenly (Config.Pace)

	Recent      []int64 `json:"recent"`       // unix nanos of requests in the last minute
	Day         int64   `json:"day"`          // UTC day number (days since the epoch)
	DayN        int     `json:"day_n"`        // requests charged that day
	Month       int64   `json:"month"`        // year*12 + month-1, UTC
	MonthN      int     `json:"month_n"`      // requests charged that month
	PausedUntil int64   `json:"paused_until"` // unix nanos; no request before
	Strikes     int     `json:"strikes"`      // consecutive 429 answers
	Last        int64   `json:"last"`         // unix nanos of the last request charged
}

func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

func monthOf(t time.Time) int64 {
	t = t.UTC()
	return int64(t.Year())*12 + int64(t.Month()) - 1
}

func nextMidnight(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
}

func nextMonth(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// roll resets the counters of windows that have ended and drops minute
// entries older than a minute. Times in the future (the clock was set back,
// or a damaged record) are clamped, so that no state can block lookups for
// longer than the month window.
func (b *budget) roll(now time.Time) {
	n := now.UnixNano()
	for i, r := range b.Recent {
		if r > n {
			b.Recent[i] = n
		}
	}
	b.Last = min(b.Last, n)
	if lim := nextMonth(now).UnixNano(); b.PausedUntil > lim {
		b.PausedUntil = lim
	}
	if d := dayOf(now); d != b.Day {
		b.Day, b.DayN = d, 0
	}
	if m := monthOf(now); m != b.Month {
		b.Month, b.MonthN = m, 0
	}
	cut := now.Add(-time.Minute).UnixNano()
	i := 0
	for i < len(b.Recent) && b.Recent[i] <= cut {
		i++
	}
	b.Recent = append(b.Recent[:0], b.Recent[i:]...)
}

// next returns when the next request may be sent (now or earlier means now).
func (b *budget) next(now time.Time) time.Time {
	b.roll(now)
	t := now
	later := func(u time.Time) {
		if u.After(t) {
			t = u
		}
	}
	later(time.Unix(0, b.PausedUntil))
	if b.perMonth > 0 && b.MonthN >= b.perMonth {
		later(nextMonth(now))
	}
	if b.perDay > 0 && b.DayN >= b.perDay {
		later(nextMidnight(now))
	}
	if b.perMin > 0 && len(b.Recent) >= b.perMin {
		later(time.Unix(0, b.Recent[len(b.Recent)-b.perMin]).Add(time.Minute))
	}
	if b.pace && b.perDay > 0 && b.DayN < b.perDay && b.Last > 0 && dayOf(time.Unix(0, b.Last)) == b.Day {
		// The requests left today, spread from the last one to midnight.
		last := time.Unix(0, b.Last)
		later(last.Add(nextMidnight(last).Sub(last) / time.Duration(b.perDay-b.DayN+1)))
	}
	return t
}

// overUntil returns the end of a block longer than the minute window
// (exhausted day or month, or a 429 pause ending more than a minute from
// now: the day or month a 429 was blamed on, or a backoff past its first
// minute), or the zero time when lookups are only held up by the minute
// window, if at all.
func (b *budget) overUntil(now time.Time) time.Time {
	b.roll(now)
	var t time.Time
	if p := time.Unix(0, b.PausedUntil); p.Sub(now) > time.Minute {
		t = p
	}
	if b.perDay > 0 && b.DayN >= b.perDay {
		if m := nextMidnight(now); m.After(t) {
			t = m
		}
	}
	if b.perMonth > 0 && b.MonthN >= b.perMonth {
		t = nextMonth(now)
	}
	return t
}

// charge counts one request sent at now in every window.
func (b *budget) charge(now time.Time) {
	b.roll(now)
	b.Recent = append(b.Recent, now.UnixNano())
	b.Last = now.UnixNano()
	b.DayN++
	b.MonthN++
}

// refund takes back the day and month charge of a request that VirusTotal
// did not count (a 429, or a request that never left: the connection
// could not be made). A request that timed out after it was sent is not
// refunded: VirusTotal may have counted it. The minute slot stays used, which
// also spaces out retries.
func (b *budget) refund(now time.Time) {
	b.roll(now)
	if b.DayN > 0 {
		b.DayN--
	}
	if b.MonthN > 0 {
		b.MonthN--
	}
}

// answered records a non-429 answer: the quota is not exhausted.
func (b *budget) answered() { b.Strikes = 0 }

// maxQuotaBackoff caps the pause after 429 answers that the plugin's own
// counts do not explain.
const maxQuotaBackoff = time.Hour

// quotaExceeded records a 429 (its request already refunded) and returns
// the pause it imposes and the window it is blamed on. VirusTotal does not
// say which quota ran out, so the plugin's own counts decide: when this
// request used the last one of the month, the day or the minute (with the
// configured limits), that window ran out and lookups wait for it to
// reset. Otherwise the quota was taken by another user of the key (a
// second host, the web interface) or the 429 was passing: lookups back
// off, a minute after the first 429 in a row, doubling with each further
// one, at most maxQuotaBackoff. Strike counts never blame the day or the
// month on their own.
func (b *budget) quotaExceeded(now time.Time) (time.Time, string) {
	b.roll(now)
	b.Strikes++
	var until time.Time
	var window string
	switch {
	case b.perMonth > 0 && b.MonthN+1 >= b.perMonth:
		until, window = nextMonth(now), "month"
	case b.perDay > 0 && b.DayN+1 >= b.perDay:
		until, window = nextMidnight(now), "day"
	case b.perMin > 0 && len(b.Recent) >= b.perMin:
		until, window = time.Unix(0, b.Recent[len(b.Recent)-b.perMin]).Add(time.Minute), "minute"
	default:
		d := time.Minute
		for i := 1; i < b.Strikes && d < maxQuotaBackoff; i++ {
			d *= 2
		}
		until, window = now.Add(min(d, maxQuotaBackoff)), "unknown"
	}
	b.PausedUntil = until.UnixNano()
	return until, window
}

// remaining returns the requests left in each window; -1 means no limit.
func (b *budget) remaining(now time.Time) (minute, day, month int) {
	b.roll(now)
	left := func(limit, used int) int {
		if limit == 0 {
			return -1
		}
		return max(limit-used, 0)
	}
	return left(b.perMin, len(b.Recent)), left(b.perDay, b.DayN), left(b.perMonth, b.MonthN)
}
