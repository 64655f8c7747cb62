package virustotal

import (
	"encoding/json"
	"time"

	vt "github.com/VirusTotal/vt-go"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// purgeEvery is how often expired entries are deleted from vt.db.
const purgeEvery = 24 * time.Hour

// maxLoggedError bounds error text taken from an answer into the log.
const maxLoggedError = 300

// run is the worker: the only goroutine that talks to VirusTotal or writes
// vt.db. It looks up the most urgent pending hash whenever the budget and
// the backoff allow, flushes queue changes every tune.flushEvery, and on
// stop writes the queue and budget before closing e.done.
func (e *Enricher) run() {
	defer close(e.done)
	defer e.flush(true)
	e.purge()
	lastPurge := time.Now()
	tick := time.NewTicker(e.tune.flushEvery)
	defer tick.Stop()
	lastFlush := time.Now()
	var notBefore time.Time // transient-failure backoff
	fails := 0
	for e.ctx.Err() == nil {
		if time.Since(lastFlush) >= e.tune.flushEvery {
			e.flush(false)
			lastFlush = time.Now()
		}
		if time.Since(lastPurge) >= purgeEvery {
			e.purge()
			lastPurge = time.Now()
		}
		sleep := time.Duration(-1) // until woken
		// Hold waits for lookMu: no lookup starts or runs while held.
		e.lookMu.Lock()
		if !e.disabled.Load() && !e.held.Load() {
			now := e.tune.now()
			e.bmu.Lock()
			at := e.b.next(now)
			e.bmu.Unlock()
			if notBefore.After(at) {
				at = notBefore
			}
			ready := !at.After(now)
			e.mu.Lock()
			it := e.q.best()
			if it != nil && ready {
				it.inflight = true
			}
			e.mu.Unlock()
			switch {
			case it != nil && ready:
				out := e.lookup(it)
				e.lookMu.Unlock()
				if out == outTransient {
					fails++
					notBefore = e.tune.now().Add(backoff(e.tune, fails))
				} else {
					fails = 0
				}
				continue
			case it != nil:
				sleep = at.Sub(now)
			}
		}
		e.lookMu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if sleep >= 0 {
			timer = time.NewTimer(sleep)
			fire = timer.C
		}
		select {
		case <-e.ctx.Done():
		case <-e.wake:
		case <-fire:
		case <-tick.C:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// backoff returns the pause after the n-th transient failure in a row:
// base doubling up to max.
func backoff(t tuning, n int) time.Duration {
	d := t.backoffBase
	for i := 1; i < n && d < t.backoffMax; i++ {
		d *= 2
	}
	return min(d, t.backoffMax)
}

// lookup sends one request for it and acts on the outcome. The caller has
// marked it in flight.
func (e *Enricher) lookup(it *item) outcome {
	now := e.tune.now()
	e.bmu.Lock()
	e.b.charge(now)
	e.setOver(now)
	e.bmu.Unlock()

	e.tr.status.Store(0)
	obj, err := e.client.GetObject(vt.URL("files/%s", it.Hash))
	status := int(e.tr.status.Load())
	if err != nil && e.ctx.Err() != nil {
		// Closing: the request was aborted; the item stays queued.
		e.mu.Lock()
		it.inflight = false
		e.mu.Unlock()
		return ""
	}
	out, code := classify(err, status)
	e.m.lookups[out].Inc()
	reason := e.red.str(code)

	now = e.tune.now()
	var until time.Time
	var window string
	e.bmu.Lock()
	if out == outQuota || status == 0 && notSent(err) {
		e.b.refund(now)
	}
	if out == outQuota {
		until, window = e.b.quotaExceeded(now)
	} else if status != 0 {
		e.b.answered()
	}
	e.setOver(now)
	bud := e.marshalBudget()
	e.bmu.Unlock()

	switch out {
	case outFound:
		c := verdictOf(obj, it.Hash)
		res := c.result(it.Hash)
		c.Expires = now.Add(e.cfg.TTL(res)).UnixNano()
		e.finish(it, res, &c, bud)
	case outNotFound:
		c := cacheEntry{}
		res := c.result(it.Hash)
		c.Expires = now.Add(e.cfg.TTL(res)).UnixNano()
		e.finish(it, res, &c, bud)
	case outQuota:
		e.log.Warn("virustotal: quota exceeded; pausing lookups (window: the one this plugin's counts used up, or unknown: another user of the key, backing off up to an hour)",
			"window", window, "until", until.UTC().Format(time.RFC3339), "code", reason)
		e.requeue(it, false, bud)
	case outAuth:
		e.requeue(it, false, bud)
		if e.disabled.CompareAndSwap(false, true) {
			e.log.Error("virustotal: THE API KEY WAS REJECTED; lookups are disabled until the key is fixed "+
				"and the plugin restarted or reloaded (SIGHUP re-reads the key); events get virustotal status skipped, reason disabled",
				"code", reason, "http_status", status)
		}
	case outTransient:
		if n := e.requeue(it, true, bud); n >= e.tune.maxAttempts {
			e.log.Warn("virustotal: lookup failed, giving up on this hash",
				"hash", it.Hash, "attempts", n, "reason", reason, "err", e.errText(err))
			e.finish(it, &audit.VTResult{Status: StatusError, Reason: reason, Hash: it.Hash}, nil, bud)
		} else {
			e.log.Warn("virustotal: lookup failed, will retry",
				"hash", it.Hash, "attempt", n, "reason", reason, "err", e.errText(err))
		}
	case outError:
		e.log.Warn("virustotal: lookup refused by the API", "hash", it.Hash, "reason", reason, "err", e.errText(err))
		e.finish(it, &audit.VTResult{Status: StatusError, Reason: reason, Hash: it.Hash}, nil, bud)
	}
	return out
}

// errText is err's message, redacted and bounded, for the log.
func (e *Enricher) errText(err error) string {
	s := e.red.str(err.Error())
	if len(s) > maxLoggedError {
		s = s[:maxLoggedError] + "…"
	}
	return s
}

// requeue puts an item back after a lookup that did not settle it and
// returns its failed-attempt count.
func (e *Enricher) requeue(it *item, failed bool, bud []byte) int {
	e.mu.Lock()
	it.inflight = false
	if failed {
		it.Attempts++
		e.dirty[it.Hash] = struct{}{}
	}
	n := it.Attempts
	e.mu.Unlock()
	e.write(write{budget: bud})
	return n
}

// finish settles an item: caches c (when not nil) on disk and in memory,
// removes the item from the queue, wakes the events waiting in Enrich and
// emits the verdict document for the events that went on as pending. The
// disk write comes first, so an Enrich that no longer finds the item in
// the queue finds the verdict in a cache.
func (e *Enricher) finish(it *item, res *audit.VTResult, c *cacheEntry, bud []byte) {
	w := write{budget: bud, dropped: []string{it.Hash}}
	if c != nil {
		b, _ := json.Marshal(c) // plain data: cannot fail
		w.entries = map[string][]byte{it.Hash: b}
	}
	e.write(w)
	if c != nil {
		e.lru.Add(it.Hash, *c)
	}
	e.mu.Lock()
	delete(e.q.items, it.Hash)
	delete(e.dirty, it.Hash)
	it.inflight = false
	it.res = res
	close(it.done)
	doc := verdictDoc(it)
	e.mu.Unlock()
	if doc != nil {
		e.emitDoc(doc)
	}
}

func (e *Enricher) write(w write) {
	if err := e.st.apply(w); err != nil {
		e.m.storeErrs.Inc()
		e.log.Error("virustotal: writing vt.db failed", "err", err)
	}
}

// flush writes the queue records changed since the last flush; final also
// writes the budget.
func (e *Enricher) flush(final bool) {
	w := write{items: make(map[string][]byte)}
	e.mu.Lock()
	for h := range e.dirty {
		if it := e.q.items[h]; it != nil {
			b, _ := json.Marshal(it) // plain data: cannot fail
			w.items[h] = b
		} else {
			w.dropped = append(w.dropped, h)
		}
	}
	clear(e.dirty)
	e.mu.Unlock()
	if final {
		e.bmu.Lock()
		w.budget = e.marshalBudget()
		e.bmu.Unlock()
	}
	if len(w.items) > 0 || len(w.dropped) > 0 || w.budget != nil {
		e.write(w)
	}
}

func (e *Enricher) purge() {
	n, err := e.st.purge(e.tune.now())
	if err != nil {
		e.m.storeErrs.Inc()
		e.log.Error("virustotal: purging expired cache entries failed", "err", err)
		return
	}
	if n > 0 {
		e.log.Info("virustotal: purged expired cache entries", "count", n)
	}
}
