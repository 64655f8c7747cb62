package virustotal

import (
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// maxWaiters bounds the event ids remembered per pending hash; events past
// it are counted in item.Extra and named in a warning on the verdict.
const maxWaiters = 256

// Priorities of pending hashes; higher goes first.
const (
	prioNormal = 0
	// prioRaised: the event carries ATT&CK techniques or the file lives in a
	// world-writable temp directory.
	prioRaised = 1
	// prioHigh: severity >= 3, a blocklist hit or a hunting rule hit.
	prioHigh = 2
)

// priority ranks an event's hash for the pending queue.
func priority(ev *audit.Event, fh audit.FileHash) int {
	switch {
	case ev.Severity >= 3 || len(ev.Blocklist) > 0 || len(ev.Hunt) > 0:
		return prioHigh
	case len(ev.Techniques) > 0 || inTempDir(fh.Path):
		return prioRaised
	}
	return prioNormal
}

func inTempDir(p string) bool {
	for _, d := range []string{"/tmp/", "/var/tmp/", "/dev/shm/"} {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// eventID is the persisted form of audit.EventID.
type eventID struct {
	Node   string `json:"node,omitempty"`
	Sec    int64  `json:"sec"`
	Msec   uint16 `json:"msec"`
	Serial uint32 `json:"serial"`
}

func (id eventID) audit() audit.EventID {
	return audit.EventID{Node: id.Node, Sec: id.Sec, Msec: id.Msec, Serial: id.Serial}
}

// fileRef is the persisted form of the audit.FileHash that named a hash.
type fileRef struct {
	Path string `json:"path,omitempty"`
	Algo string `json:"algo"`
	Hex  string `json:"hex"`
}

// item is one pending hash. The exported fields are persisted in vt.db;
// the others live only in memory. All fields are guarded by Enricher.mu.
type item struct {
	Hash     string    `json:"hash"`
	Prio     int       `json:"prio"`
	Seq      uint64    `json:"seq"`
	Waiters  []eventID `json:"waiters,omitempty"`
	Extra    int       `json:"extra,omitempty"`
	File     fileRef   `json:"file"`
	Attempts int       `json:"attempts,omitempty"`

	// done is closed once res is set and the item left the queue.
	done chan struct{}
	res  *audit.VTResult
	// inflight marks the item the worker is looking up; it is never evicted.
	inflight bool
}

func (it *item) addWaiter(id audit.EventID) {
	if len(it.Waiters) >= maxWaiters {
		it.Extra++
		return
	}
	it.Waiters = append(it.Waiters, eventID{Node: id.Node, Sec: id.Sec, Msec: id.Msec, Serial: id.Serial})
}

// queue is the bounded, deduplicated set of pending hashes. It is not safe
// for concurrent use. Picking is a linear scan: the worker picks at most a
// few items a minute, and the bound keeps the scan short.
type queue struct {
	max   int
	items map[string]*item
	seq   uint64
}

func newQueue(max int) queue { return queue{max: max, items: make(map[string]*item)} }

// before reports whether a goes before b: higher priority, then older.
func before(a, b *item) bool {
	if a.Prio != b.Prio {
		return a.Prio > b.Prio
	}
	return a.Seq < b.Seq
}

// best returns the next item to look up, or nil when the queue is empty.
func (q *queue) best() *item {
	var b *item
	for _, it := range q.items {
		if b == nil || before(it, b) {
			b = it
		}
	}
	return b
}

// worst returns the item to evict first, skipping the one in flight.
func (q *queue) worst() *item {
	var w *item
	for _, it := range q.items {
		if !it.inflight && (w == nil || before(w, it)) {
			w = it
		}
	}
	return w
}

// push adds a new item with the given priority. When the queue is full it
// evicts the worst item if that one has a lower priority and returns it;
// otherwise it refuses the new item (ok false).
func (q *queue) push(it *item) (evicted *item, ok bool) {
	if len(q.items) >= q.max {
		w := q.worst()
		if w == nil || w.Prio >= it.Prio {
			return nil, false
		}
		delete(q.items, w.Hash)
		evicted = w
	}
	q.seq++
	it.Seq = q.seq
	it.done = make(chan struct{})
	q.items[it.Hash] = it
	return evicted, true
}

// restore puts back a persisted item, keeping its sequence number.
func (q *queue) restore(it *item) {
	it.done = make(chan struct{})
	q.items[it.Hash] = it
	if it.Seq > q.seq {
		q.seq = it.Seq
	}
}
