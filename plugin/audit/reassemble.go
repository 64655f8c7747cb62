package audit

import (
	"strings"
	"time"
)

// DefaultHold is how long, by default, an event that looks complete by the
// single-record or last-record rule waits for more records of its own
// before it is emitted (see Reassembler).
const DefaultHold = 50 * time.Millisecond

// ReassemblerConfig bounds the reassembler.
type ReassemblerConfig struct {
	// Timeout closes an event this long after its last record (default
	// 2s). It is also how long the id of an emitted event is remembered,
	// so that a record of it arriving later is flagged late.
	Timeout time.Duration
	// Hold is how long an event that looks complete waits for more of its
	// records (default DefaultHold), on the same clock as Timeout.
	Hold time.Duration
	// MaxInFlight is the most events held open at once; past it the oldest
	// is closed early and counted as evicted (default 4096). Four times
	// as many ids of emitted events are remembered at most.
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
	StrayEOE    uint64 // EOE records that closed nothing: their event was already emitted, or never seen
	Late        uint64 // records that arrived after their event was emitted
	InFlight    int    // events currently open
	MaxInFlight int    // high-water mark of InFlight
}

type eventKey struct {
	node   string
	sec    int64
	msec   uint16
	serial uint32
}

// state is where a pending entry is: each state has its own list.
type state uint8

const (
	open state = iota // waiting for more records, EOE or the timeout
	held              // complete by the single- or last-record rule unless more records come
	done              // emitted; the id is remembered to flag late records
)

type pending struct {
	key        eventKey
	ev         *Event // nil when done
	last       int64  // unix nanoseconds (stream or wall time): last record, hold start, or emission
	state      state
	prev, next *pending
}

// list is a doubly linked list of pending entries in order of their last
// field (oldest first).
type list struct {
	head, tail *pending
	n          int
}

func (l *list) pushBack(p *pending) {
	p.prev, p.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = p
	} else {
		l.head = p
	}
	l.tail = p
	l.n++
}

func (l *list) remove(p *pending) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		l.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		l.tail = p.prev
	}
	p.prev, p.next = nil, nil
	l.n--
}

type nodeTrack struct {
	name    string // a copy of the node name, for the keys of remembered ids
	max     uint32
	seen    bool
	missing int64
	eoe     bool // the node's stream carries EOE records
}

// Reassembler groups records into events keyed by (node, sec.msec, serial),
// the auparse identity.
//
// An event ends:
//   - on its EOE record (EOE records are not kept);
//   - by the single-record rule: its first record is of a type auparse
//     treats as last (IsLastRecord: user-space, daemon, PROCTITLE, ...), or
//     by the last-record rule on a node whose stream has shown no EOE yet
//     (audit.log does not keep EOE records). Such an event is held: it is
//     emitted once Hold passed without another record of it (wall clock:
//     at the first Maintain after that; StreamTime: at the first record
//     stamped at least Hold later, or Flush). A record of it that arrives
//     in the meantime ends the hold; on a node whose stream carries EOE,
//     the event then waits for its EOE, since a kernel that writes EOE
//     ends every multi-record event with one;
//   - after Timeout without new records (TimedOut is set);
//   - when more than MaxInFlight events are open or held (a held one is
//     emitted first; else the oldest open one, with Evicted and TimedOut).
//
// So records of one event are never split while they keep arriving within
// the hold (single record) or the timeout (multi-record event). A record
// whose event was already emitted (within the last Timeout, and among the
// last 4×MaxInFlight emitted) starts a new event of the same id with Late
// set, counted in Stats().Late; later records of it join that late event.
//
// Events are passed to emit in the order they end, on the goroutine that
// called Push, Maintain or Flush. Records of one event keep their arrival
// order. A Reassembler is not safe for concurrent use.
type Reassembler struct {
	cfg        ReassemblerConfig
	emit       func(*Event)
	m          map[eventKey]*pending // open, held and done entries
	open       list                  // by last record
	held       list                  // by start of the hold
	done       list                  // by emission
	maxDone    int
	now        int64 // current time in the clock of cfg
	lastExpire int64 // stream time of the last expiry pass
	nodes      map[string]*nodeTrack
	lastNode   *nodeTrack // nodes[lastName], the last node looked up
	lastName   string
	wall       func() int64 // the wall clock in unix nanoseconds (tests replace it)
	free       []*pending
	pslab      []pending // where new pending entries come from
	evs        []Event
	recs       []*Record
	released   *eventList // events given back by Release
	spare      []*Event   // released events taken over, for newEvent
	stats      ReassemblerStats
}

// NewReassembler returns a reassembler that passes each finished event to emit.
func NewReassembler(cfg ReassemblerConfig, emit func(*Event)) *Reassembler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	return &Reassembler{cfg: cfg, emit: emit, m: make(map[eventKey]*pending), nodes: make(map[string]*nodeTrack),
		maxDone: 4 * cfg.MaxInFlight, wall: func() int64 { return time.Now().UnixNano() }, released: &eventList{}}
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblerStats {
	s := r.stats
	s.InFlight = r.open.n + r.held.n
	return s
}

// Push adds one record and takes it over: the record joins an event, or
// is released at once when no event keeps it (EOE). In stream-time mode
// Push may close events whose time has passed; with wall time, call
// Maintain periodically.
func (r *Reassembler) Push(rec *Record) {
	r.stats.Records++
	k := eventKey{rec.Node, rec.Sec, rec.Msec, rec.Serial}
	if r.cfg.StreamTime {
		t := rec.Sec*1e9 + int64(rec.Msec)*1e6
		if t > r.now {
			r.now = t
			r.release(t - int64(r.cfg.Hold))
			// Expire at most every half second of stream time, however
			// small the steps between records are.
			if t-r.lastExpire >= int64(time.Second/2) {
				r.lastExpire = t
				r.expire()
			}
		}
	}
	p := r.m[k]
	if rec.TypeNum == TypeEOE {
		r.node(rec.Node).eoe = true
		if p != nil && p.state != done {
			r.close(p)
		} else {
			// The event was already emitted, or never seen: auparse eats
			// such an EOE too.
			r.stats.StrayEOE++
		}
		rec.release()
		return
	}
	first := true
	switch {
	case p == nil:
		r.trackSerial(rec)
		// The remembered key must not keep the record's line alive.
		k.node = r.node(rec.Node).name
		p = r.newPending(k)
		p.ev = r.newEvent(k, rec)
	case p.state == done:
		r.done.remove(p)
		p.ev = r.newEvent(k, rec)
		p.ev.Late = true
		r.stats.Late++
	default:
		first = false
		p.ev.Records = append(p.ev.Records, rec)
		if p.ev.Late {
			r.stats.Late++
		}
	}
	st, l, last := open, &r.open, r.clock()
	if IsLastRecord(rec.TypeNum) && (first || !r.node(rec.Node).eoe) {
		st, l, last = held, &r.held, r.holdStart()
	}
	// Records of one event mostly come in a row: their entry is then the
	// tail of its list already.
	if first || p.state != st || l.tail != p {
		if !first {
			r.listOf(p).remove(p)
		}
		p.state = st
		l.pushBack(p)
	}
	p.last = last
	if n := r.open.n + r.held.n; n > r.cfg.MaxInFlight {
		if r.held.n > 0 {
			r.close(r.held.head)
		} else {
			old := r.open.head
			r.stats.Evicted++
			old.ev.Evicted = true
			r.timeOut(old)
		}
	} else if n > r.stats.MaxInFlight {
		r.stats.MaxInFlight = n
	}
}

func (r *Reassembler) listOf(p *pending) *list {
	switch p.state {
	case held:
		return &r.held
	case done:
		return &r.done
	}
	return &r.open
}

func (r *Reassembler) clock() int64 {
	if r.cfg.StreamTime {
		return r.now
	}
	if r.now == 0 {
		r.now = r.wall()
	}
	return r.now
}

// holdStart is the time a hold begins: the stream clock, or the wall clock
// read now (the coarse clock that Maintain sets may lag by its period,
// which would shorten the hold).
func (r *Reassembler) holdStart() int64 {
	if r.cfg.StreamTime {
		return r.now
	}
	return r.wall()
}

// SetNow sets the coarse clock that Push stamps records with to now
// (wall-clock mode; a no-op with StreamTime) and ends nothing. Call it
// before pushing records that were read at now: Push reads no clock of its
// own for them, and a clock last set by Maintain before an idle spell
// longer than Timeout would make the first record after it look timed out
// at the next Maintain.
func (r *Reassembler) SetNow(now time.Time) {
	if !r.cfg.StreamTime {
		r.now = now.UnixNano()
	}
}

// Maintain ends the holds and timeouts that are due by now (wall-clock
// mode) and returns how many events it emitted. Call it more often than
// Hold (the plugin does every 50 ms); it also sets the coarse clock that
// Push uses to stamp records (see SetNow).
func (r *Reassembler) Maintain(now time.Time) int {
	if r.cfg.StreamTime {
		return 0
	}
	before := r.stats.Events
	r.now = now.UnixNano()
	r.release(r.now - int64(r.cfg.Hold))
	r.expire()
	return int(r.stats.Events - before)
}

// Flush emits every open and held event (end of input), oldest first. Open
// ones are flagged TimedOut.
func (r *Reassembler) Flush() {
	for r.open.head != nil || r.held.head != nil {
		o, h := r.open.head, r.held.head
		if h != nil && (o == nil || h.last <= o.last) {
			r.close(h)
		} else {
			r.timeOut(o)
		}
	}
}

// release emits the held events whose hold began at or before limit.
func (r *Reassembler) release(limit int64) {
	for p := r.held.head; p != nil && p.last <= limit; p = r.held.head {
		r.close(p)
	}
}

func (r *Reassembler) expire() {
	limit := r.now - int64(r.cfg.Timeout)
	// Each list is in order of its entries' times, so a pass stops at the
	// first fresh entry.
	for p := r.open.head; p != nil && p.last <= limit; p = r.open.head {
		r.timeOut(p)
	}
	for p := r.done.head; p != nil && p.last <= limit; p = r.done.head {
		r.forget(p)
	}
}

func (r *Reassembler) timeOut(p *pending) {
	p.ev.TimedOut = true
	r.stats.TimedOut++
	r.close(p)
}

func (r *Reassembler) newPending(k eventKey) *pending {
	var p *pending
	if n := len(r.free); n > 0 {
		p = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		if len(r.pslab) == cap(r.pslab) {
			r.pslab = make([]pending, 0, 128)
		}
		r.pslab = r.pslab[:len(r.pslab)+1]
		p = &r.pslab[len(r.pslab)-1]
	}
	p.key = k
	r.m[k] = p
	return p
}

// newEvent returns an event of key k holding rec: a released one when
// there is one (see Event.Release), else one from the event and record
// slabs.
func (r *Reassembler) newEvent(k eventKey, rec *Record) *Event {
	id := EventID{Node: k.node, Sec: k.sec, Msec: k.msec, Serial: k.serial}
	if len(r.spare) == 0 {
		r.spare = r.released.take(r.spare)
	}
	if n := len(r.spare); n > 0 {
		ev := r.spare[n-1]
		r.spare[n-1] = nil
		r.spare = r.spare[:n-1]
		recs := ev.Records
		*ev = Event{ID: id, home: r.released} // also clears a test binary's poisoned tags
		if cap(recs) == 0 {
			recs = make([]*Record, 0, 8)
		}
		ev.Records = append(recs, rec)
		return ev
	}
	if len(r.evs) == cap(r.evs) {
		r.evs = make([]Event, 0, 128)
	}
	r.evs = r.evs[:len(r.evs)+1]
	ev := &r.evs[len(r.evs)-1]
	ev.ID, ev.home = id, r.released
	if cap(r.recs)-len(r.recs) < 8 {
		r.recs = make([]*Record, 0, 1024)
	}
	n := len(r.recs)
	r.recs = append(r.recs, rec)
	ev.Records = r.recs[n : n+1 : n+8]
	r.recs = r.recs[:n+8]
	return ev
}

// close emits the event of an open or held entry and keeps its id as done.
func (r *Reassembler) close(p *pending) {
	r.listOf(p).remove(p)
	ev := p.ev
	p.ev = nil
	p.state = done
	p.last = r.clock()
	r.done.pushBack(p)
	if r.done.n > r.maxDone {
		r.forget(r.done.head)
	}
	r.stats.Events++
	r.emit(ev)
}

// forget drops a done entry.
func (r *Reassembler) forget(p *pending) {
	r.done.remove(p)
	delete(r.m, p.key)
	p.key = eventKey{}
	r.free = append(r.free, p)
}

// node returns the tracking state of a node, with a one-entry cache (a
// stream rarely switches nodes).
func (r *Reassembler) node(name string) *nodeTrack {
	if r.lastNode != nil && r.lastName == name {
		return r.lastNode
	}
	t := r.nodes[name]
	if t == nil {
		t = &nodeTrack{name: strings.Clone(name)}
		r.nodes[t.name] = t
	}
	r.lastNode, r.lastName = t, name
	return t
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
	t := r.node(rec.Node)
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
