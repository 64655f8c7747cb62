package virustotal

import (
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
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
