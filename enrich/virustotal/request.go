package virustotal

import (
	"log/slog"
	"slices"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Request asks for a lookup of fh on behalf of a caller outside the event
// stream: the fleet verdict service, which turns sightings into requests.
// It shares Enrich's caches, queue, budget and worker.
//
// When a cached outcome is fresh, Request returns it with its expiry.
// Otherwise it queues the hash (or joins the queued item) and returns nil:
// a verdict document follows through the Emitter, naming id, once the
// worker settles the hash (hit, not_found, error, or skipped/queue_full
// when a more urgent hash evicted it). weight is added to the hash's queue
// priority, so hashes requested with larger weights go first (Enrich ranks
// events 0 to 2). A queue that refuses the hash returns the skipped
// result at once. Safe for concurrent use with Enrich.
func (e *Enricher) Request(fh audit.FileHash, id audit.EventID, weight int) (*audit.VTResult, time.Time) {
	h := fh.Hex
	if !e.cfg.Enabled || e.ctx.Err() != nil || e.disabled.Load() {
		return e.skip(h, ReasonDisabled), time.Time{}
	}
	now := e.tune.now()
	if c, ok := e.lru.Get(h); ok && c.Expires > now.UnixNano() {
		e.m.cacheHit.Inc()
		return c.result(h), time.Unix(0, c.Expires)
	}
	e.mu.Lock()
	it := e.q.items[h]
	if it != nil {
		e.addWeightLocked(it, id, weight)
	}
	e.mu.Unlock()
	if it != nil {
		return nil, time.Time{}
	}
	if c, ok := e.fromDisk(h, now); ok {
		return c.result(h), time.Unix(0, c.Expires)
	}
	e.m.cacheMiss.Inc()
	if _, res := e.enqueue(h, fh, id, weight, true); res != nil {
		return res, time.Time{}
	}
	return nil, time.Time{}
}

// addWeightLocked raises a queued item's priority by weight and registers
// id when no caller waits on the item yet. e.mu must be held.
func (e *Enricher) addWeightLocked(it *item, id audit.EventID, weight int) {
	if len(it.Waiters) == 0 {
		it.addWaiter(id)
	}
	it.Prio += weight
	e.dirty[it.Hash] = struct{}{}
}

// TTL returns how long an outcome stays cached: TTLMalicious for a verdict
// with a malicious detection, TTLClean for other verdicts, TTLNotFound for
// unknown files, and 0 for outcomes that are not cached (error, skipped).
func (c *Config) TTL(res *audit.VTResult) time.Duration {
	switch {
	case res.Status == StatusHit && res.VTVerdict != nil && res.Malicious > 0:
		return c.TTLMalicious
	case res.Status == StatusHit:
		return c.TTLClean
	case res.Status == StatusNotFound:
		return c.TTLNotFound
	}
	return 0
}

// MaxWaiters is the most event ids a verdict document lists; further
// events are counted in its warning.
const MaxWaiters = maxWaiters

// NewHeld is New for the fleet verdict service: the enricher starts held
// (see Hold), so that the service decides what to do with the queue it
// restored from vt.db before any lookup.
func NewHeld(cfg Config, emit enrich.Emitter, logger *slog.Logger, reg *metrics.Registry) (*Enricher, error) {
	t := defaultTuning
	t.held = true
	return newEnricher(cfg, emit, logger, t, reg)
}

// Hold stops lookups: it returns once no lookup is in flight (the one
// that was has settled and its verdict document was emitted), and none
// starts until Resume. Queued hashes stay queued; Enrich and Request go on
// answering from the caches and queueing. Safe for concurrent use.
func (e *Enricher) Hold() {
	if e.cancel == nil {
		return
	}
	e.lookMu.Lock() // waits for the lookup in flight; the worker reads held under lookMu
	e.held.Store(true)
	e.lookMu.Unlock()
}

// Resume lets the worker look hashes up again after Hold.
func (e *Enricher) Resume() {
	if e.cancel == nil {
		return
	}
	e.held.Store(false)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Withdrawn is a hash taken out of the queue by Withdraw: the file it
// names and its queue priority (the weights it gathered).
type Withdrawn struct {
	File   audit.FileHash
	Weight int
}

// Withdraw takes every queued hash that is not being looked up out of the
// queue (and, at the worker's next flush, out of vt.db) and returns them,
// most urgent first. It is for callers that hand the hashes to someone
// else (the fleet verdict service gives them back to the consumer group):
// no verdict document is emitted for them, and events of Enrich that wait
// on one go on as pending. Call it after Hold to take every queued hash.
func (e *Enricher) Withdraw() []Withdrawn {
	if e.cancel == nil {
		return nil
	}
	e.mu.Lock()
	var items []*item
	for h, it := range e.q.items {
		if it.inflight {
			continue
		}
		items = append(items, it)
		delete(e.q.items, h)
		e.dirty[h] = struct{}{}
	}
	e.mu.Unlock()
	slices.SortFunc(items, func(a, b *item) int {
		if before(a, b) {
			return -1
		}
		return 1
	})
	out := make([]Withdrawn, len(items))
	for i, it := range items {
		out[i] = Withdrawn{File: audit.FileHash{Path: it.File.Path, Algo: it.File.Algo, Hex: it.File.Hex}, Weight: it.Prio}
	}
	return out
}
