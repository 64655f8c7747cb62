package audit

import "time"

// ReassemblerConfig bounds the reassembler.
type ReassemblerConfig struct {
	// Timeout closes an event this long after its last record (default 2s).
	Timeout time.Duration
	// MaxInFlight is the most events held open at once; past it the oldest
	// is closed early and counted as evicted (default 4096).
	MaxInFlight int
	// StreamTime makes the timeout run on record time (replay) instead of
	// the wall clock (live input).
	StreamTime bool
}

// ReassemblerStats are the reassembler's counters.
type ReassemblerStats struct {
	Records     uint64 // records pushed
	Events      uint64 // events emitted
	TimedOut    uint64 // events closed by the timeout
	Evicted     uint64 // events closed because MaxInFlight was reached
	StrayEOE    uint64 // EOE records for events already closed
	InFlight    int    // events currently open
	MaxInFlight int    // high-water mark of InFlight
}

type eventKey struct {
	node   string
	sec    int64
	msec   uint16
	serial uint32
}

type pending struct {
	ev         *Event
	last       int64 // unix nanoseconds of the last record (stream or wall time)
	prev, next *pending
}

type serialTrack struct {
	max     uint32
	seen    bool
	missing int64
}

// Reassembler groups records into events keyed by (node, sec.msec, serial),
// the auparse identity.
//
// An event closes on EOE, on a record type that auparse treats as last
// (IsLastRecord), after Timeout without new records (TimedOut is set), or
// when MaxInFlight is exceeded (the oldest event; Evicted and TimedOut are
// set). Events are passed to emit in the order they close, on the goroutine
// that called Push, Maintain or Flush. Records of one event keep their
// arrival order. A Reassembler is not safe for concurrent use.
type Reassembler struct {
	cfg        ReassemblerConfig
	emit       func(*Event)
	open       map[eventKey]*pending
	head       *pending // oldest
	tail       *pending // newest
	now        int64    // current time in the clock of cfg
	lastExpire int64    // stream time of the last expiry pass
	nodes      map[string]*serialTrack
	free       []*pending
	evs        []Event
	recs       []*Record
	stats      ReassemblerStats
}

// NewReassembler returns a reassembler that passes each finished event to emit.
func NewReassembler(cfg ReassemblerConfig, emit func(*Event)) *Reassembler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	return &Reassembler{cfg: cfg, emit: emit, open: make(map[eventKey]*pending), nodes: make(map[string]*serialTrack)}
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblerStats {
	s := r.stats
	s.InFlight = len(r.open)
	return s
}

// Push adds one record. In stream-time mode it may close events whose time
// has passed; with wall time, call Maintain periodically.
func (r *Reassembler) Push(rec *Record) {
	r.stats.Records++
	k := eventKey{rec.Node, rec.Sec, rec.Msec, rec.Serial}
	if r.cfg.StreamTime {
		t := rec.Sec*1e9 + int64(rec.Msec)*1e6
		if t > r.now {
			r.now = t
			// Expire at most every half second of stream time, however
			// small the steps between records are.
			if t-r.lastExpire >= int64(time.Second/2) {
				r.lastExpire = t
				r.expire()
			}
		}
	}
	p := r.open[k]
	if rec.TypeNum == TypeEOE {
		if p != nil {
			r.close(k, p)
		} else {
			// The event was already closed by a last-record type, or
			// never seen: auparse eats such an EOE too.
			r.stats.StrayEOE++
		}
		return
	}
	if p == nil {
		r.trackSerial(rec)
		p = r.newPending(k, rec)
		if len(r.open) > r.cfg.MaxInFlight {
			old := r.head
			r.stats.Evicted++
			old.ev.Evicted = true
			old.ev.TimedOut = true
			r.close(keyOf(old.ev), old)
		}
	} else {
		p.ev.Records = append(p.ev.Records, rec)
		p.last = r.clock()
		r.moveToTail(p)
	}
	if IsLastRecord(rec.TypeNum) {
		r.close(k, p)
	}
}

func keyOf(ev *Event) eventKey {
	return eventKey{ev.ID.Node, ev.ID.Sec, ev.ID.Msec, ev.ID.Serial}
}

func (r *Reassembler) clock() int64 {
	if r.cfg.StreamTime {
		return r.now
	}
	if r.now == 0 {
		r.now = time.Now().UnixNano()
	}
	return r.now
}

// Maintain closes the events that timed out by now (wall-clock mode). Call it
// every few hundred milliseconds; it also sets the coarse clock that Push
// uses to stamp records.
func (r *Reassembler) Maintain(now time.Time) {
	if r.cfg.StreamTime {
		return
	}
	r.now = now.UnixNano()
	r.expire()
}

// Flush closes every open event (end of input), oldest first.
func (r *Reassembler) Flush() {
	for r.head != nil {
		p := r.head
		p.ev.TimedOut = true
		r.stats.TimedOut++
		r.close(keyOf(p.ev), p)
	}
}

func (r *Reassembler) expire() {
	limit := r.now - int64(r.cfg.Timeout)
	// Events are kept in order of their last record, so expiry stops at the
	// first one that is still fresh.
	for p := r.head; p != nil && p.last <= limit; p = r.head {
		p.ev.TimedOut = true
		r.stats.TimedOut++
		r.close(keyOf(p.ev), p)
	}
}

func (r *Reassembler) newPending(k eventKey, rec *Record) *pending {
	var p *pending
	if n := len(r.free); n > 0 {
		p = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		p = &pending{}
	}
	if len(r.evs) == cap(r.evs) {
		r.evs = make([]Event, 0, 128)
	}
	r.evs = r.evs[:len(r.evs)+1]
	ev := &r.evs[len(r.evs)-1]
	ev.ID = EventID{Node: k.node, Sec: k.sec, Msec: k.msec, Serial: k.serial}
	if cap(r.recs)-len(r.recs) < 8 {
		r.recs = make([]*Record, 0, 1024)
	}
	n := len(r.recs)
	r.recs = append(r.recs, rec)
	ev.Records = r.recs[n : n+1 : n+8]
	r.recs = r.recs[:n+8]
	p.ev = ev
	p.last = r.clock()
	r.open[k] = p
	// append at tail
	p.prev, p.next = r.tail, nil
	if r.tail != nil {
		r.tail.next = p
	} else {
		r.head = p
	}
	r.tail = p
	if len(r.open) > r.stats.MaxInFlight {
		r.stats.MaxInFlight = len(r.open)
	}
	return p
}

func (r *Reassembler) unlink(p *pending) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		r.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		r.tail = p.prev
	}
	p.prev, p.next = nil, nil
}

func (r *Reassembler) moveToTail(p *pending) {
	if r.tail == p {
		return
	}
	r.unlink(p)
	p.prev = r.tail
	if r.tail != nil {
		r.tail.next = p
	} else {
		r.head = p
	}
	r.tail = p
}

func (r *Reassembler) close(k eventKey, p *pending) {
	delete(r.open, k)
	r.unlink(p)
	ev := p.ev
	p.ev = nil
	r.free = append(r.free, p)
	r.stats.Events++
	r.emit(ev)
}

// maxGap is the largest serial jump still counted as loss; bigger jumps are
// a restart or wrap-around and reset the tracking without counting.
const maxGap = 1 << 16

// trackSerial keeps the lost-event hint per node: a jump over serials
// counts them as missing, a new event with an older serial (records of
// different events interleave) gives one back. auditd's own DAEMON_*
// records use their own counter and are ignored. O(1) per new event.
func (r *Reassembler) trackSerial(rec *Record) {
	if rec.TypeNum >= TypeDaemonFirst && rec.TypeNum <= TypeDaemonLast {
		return
	}
	t := r.nodes[rec.Node]
	if t == nil {
		t = &serialTrack{}
		r.nodes[rec.Node] = t
	}
	s := rec.Serial
	switch {
	case !t.seen:
		t.seen, t.max = true, s
	case s > t.max && s-t.max <= maxGap:
		t.missing += int64(s - t.max - 1)
		t.max = s
	case s < t.max && t.max-s <= maxGap:
		if t.missing > 0 {
			t.missing-- // a late event fills a hole
		}
	case s == t.max:
	default:
		// restart or wrap-around: never report the jump itself
		t.max = s
	}
}

// LostHint returns the serials never seen so far. It is a hint (the
// kernel's lost counter is the authority): serials the kernel spent on
// events that no rule sent to auditd count too.
func (r *Reassembler) LostHint() uint64 {
	var n int64
	for _, t := range r.nodes {
		n += t.missing
	}
	return uint64(n)
}
