package sinks

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// AlertReport is one coalesced loss report for one sink.
type AlertReport struct {
	Sink string
	// Counts are the messages lost since the previous report, by reason.
	Counts map[string]uint64
	// Total is the messages this sink lost since the Alerts was made.
	Total uint64
}

// Count is the sum of Counts.
func (r AlertReport) Count() uint64 {
	var n uint64
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// Reasons lists the reasons of Counts, sorted and joined by commas.
func (r AlertReport) Reasons() string {
	return strings.Join(slices.Sorted(maps.Keys(r.Counts)), ",")
}

// Detail lists the counts as "reason=n" pairs, sorted by reason.
func (r AlertReport) Detail() string {
	var b strings.Builder
	for i, reason := range slices.Sorted(maps.Keys(r.Counts)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", reason, r.Counts[reason])
	}
	return b.String()
}

// Alerts coalesces the loss reports of sinks (RunnerOptions.OnDrop) into
// at most one report per sink per interval, carrying that interval's
// counts by reason and the sink's running total. The first loss of a quiet
// sink is reported at once; later ones wait for the end of the interval.
//
// Emit is called from Add or from a timer goroutine, never with a lock
// held and never twice at once. Whoever turns a report into an alert
// document must keep it out of the sink it is about (that sink is losing
// messages; an alert about its loss queued behind them would add to it,
// and it would report on itself); Emit may publish to the other sinks.
type Alerts struct {
	every time.Duration
	emit  func(AlertReport)

	emitMu sync.Mutex // serialises emit
	mu     sync.Mutex
	pend   map[string]map[string]uint64
	total  map[string]uint64
	last   map[string]time.Time
	timer  map[string]*time.Timer
	closed bool
}

// NewAlerts returns an Alerts that reports through emit at most once per
// sink every interval.
func NewAlerts(every time.Duration, emit func(AlertReport)) *Alerts {
	return &Alerts{
		every: every, emit: emit,
		pend: map[string]map[string]uint64{}, total: map[string]uint64{},
		last: map[string]time.Time{}, timer: map[string]*time.Timer{},
	}
}

// Add records n messages sink lost for reason. Its signature is that of
// RunnerOptions.OnDrop.
func (a *Alerts) Add(sink string, n int, reason string) {
	if n <= 0 {
		return
	}
	a.mu.Lock()
	if a.pend[sink] == nil {
		a.pend[sink] = map[string]uint64{}
	}
	a.pend[sink][reason] += uint64(n)
	a.total[sink] += uint64(n)
	wait := a.every - time.Since(a.last[sink])
	if a.closed || wait > 0 {
		if !a.closed && a.timer[sink] == nil {
			a.timer[sink] = time.AfterFunc(wait, func() { a.fire(sink) })
		}
		a.mu.Unlock()
		return
	}
	rep := a.take(sink)
	a.mu.Unlock()
	a.send(rep)
}

// fire reports what sink lost since its last report.
func (a *Alerts) fire(sink string) {
	a.mu.Lock()
	delete(a.timer, sink)
	if a.closed || len(a.pend[sink]) == 0 {
		a.mu.Unlock()
		return
	}
	rep := a.take(sink)
	a.mu.Unlock()
	a.send(rep)
}

// take builds sink's report and starts its next interval; a.mu is held.
func (a *Alerts) take(sink string) AlertReport {
	rep := AlertReport{Sink: sink, Counts: a.pend[sink], Total: a.total[sink]}
	delete(a.pend, sink)
	a.last[sink] = time.Now()
	return rep
}

func (a *Alerts) send(rep AlertReport) {
	a.emitMu.Lock()
	defer a.emitMu.Unlock()
	a.emit(rep)
}

// Close stops the timers and returns the reports still pending, by sink
// name order, for the caller to log (publishing may no longer be
// possible). Later Adds are only totalled.
func (a *Alerts) Close() []AlertReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, t := range a.timer {
		t.Stop()
	}
	clear(a.timer)
	var out []AlertReport
	for _, sink := range slices.Sorted(maps.Keys(a.pend)) {
		out = append(out, a.take(sink))
	}
	return out
}
