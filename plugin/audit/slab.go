package audit

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Ownership of parsed records (the rule every stage follows):
//
//   - Parser.Parse hands out a Record whose struct and Fields/Interp
//     slices live in a slab that the parser reuses once every record of
//     the slab has been released.
//   - Reassembler.Push takes the record over: it puts it into an event,
//     or releases it at once (EOE records, which no event keeps).
//   - An emitted Event owns its records. One goroutine at a time owns the
//     event (an enrichment worker, then the output stage); the last owner,
//     the output stage once every sink has its encoded copy, calls
//     Event.Release. After that nothing may read the event's Records or
//     any Field of them, nor the Event itself: the reassembler that made
//     it reuses the Event for a later one.
//   - Strings read from a record (names, values, Line, Node, Type) point
//     into the input line or into decoded bytes, which are never reused:
//     they stay valid after Release and may be kept. What outlives the
//     event must be such strings (or copies), never a *Record, a []Field
//     or the *Event.
//
// An event that is never released costs only its slab's reuse: the slab
// and the Event are then left to the garbage collector.
//
// In test binaries (testing.Testing) a slab is poisoned instead of
// cleared when it is recycled: every string of its records and fields
// reads ReleasedMarker, so a use after release shows in documents and
// assertions, and the race detector reports the reader that was not
// ordered before the release. A released Event is poisoned the same way
// (its ID's node and its one tag read ReleasedMarker) until it is reused.

// ReleasedMarker is what every string of a released record and its
// fields reads in test binaries, until the slab is reused.
const ReleasedMarker = "audit-record-used-after-release"

// poisonReleased selects poisoning over clearing (test binaries only).
var poisonReleased = testing.Testing()

const (
	slabRecords = 128  // records per slab
	slabFields  = 1536 // fields per slab (about 11 per record on real logs)
	slabBytes   = 16 << 10
	// maxFreeSlabs bounds the slabs a parser keeps for reuse (about
	// 100 KiB each); more are left to the garbage collector. Records in
	// flight (reader batches, reassembly, the enrichment queue) fill
	// about 20 slabs with the default queue of 512 events.
	maxFreeSlabs = 32
)

// slab holds records and their fields for one parser.
//
// Counting: the parser counts the records it hands out in handed, which
// only it reads. When the slab is full, the parser retires it by adding
// handed to refs; each release subtracts one. Before retirement refs is
// at most zero and a release leaves it below zero; after, it reaches zero
// exactly once, at the last release (or at retirement when every record
// was already released), and whoever brings it there recycles the slab.
type slab struct {
	recs   []Record
	fields []Field
	handed int32
	refs   atomic.Int32
	free   *slabList
}

// slabList is a parser's free slabs; releases add to it from any
// goroutine, the parser takes from it.
type slabList struct {
	mu    sync.Mutex
	slabs []*slab
}

func (l *slabList) get() *slab {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.slabs)
	if n == 0 {
		return nil
	}
	s := l.slabs[n-1]
	l.slabs[n-1] = nil
	l.slabs = l.slabs[:n-1]
	return s
}

func (l *slabList) put(s *slab) {
	l.mu.Lock()
	if len(l.slabs) < maxFreeSlabs {
		l.slabs = append(l.slabs, s)
	}
	l.mu.Unlock()
}

// recycle empties a slab whose records are all released and gives it back
// to its parser. Slabs grown for one huge record are left to the GC.
func (s *slab) recycle() {
	if cap(s.recs) != slabRecords || cap(s.fields) != slabFields {
		return
	}
	if poisonReleased {
		poison(s)
	} else {
		clear(s.recs[:len(s.recs)])
		clear(s.fields[:len(s.fields)])
	}
	s.recs, s.fields, s.handed = s.recs[:0], s.fields[:0], 0
	s.free.put(s)
}

// poison fills every string of a released slab's records and fields with
// ReleasedMarker (test binaries).
func poison(s *slab) {
	for i := range s.recs {
		s.recs[i] = Record{Node: ReleasedMarker, Type: ReleasedMarker, Line: ReleasedMarker, NestedFrom: -1}
	}
	for i := range s.fields {
		s.fields[i] = Field{Name: ReleasedMarker, Raw: ReleasedMarker, Value: ReleasedMarker}
	}
}

// drop releases one record of s.
func (s *slab) drop() {
	if s.refs.Add(-1) == 0 {
		s.recycle()
	}
}

// release gives r back to its slab; a second call, or a record that no
// Parser made, does nothing.
func (r *Record) release() {
	if s := r.slab; s != nil {
		r.slab = nil
		s.drop()
	}
}

// Release gives the event's records back to the parser that made them and
// empties Records; see the ownership rule at the top of this file. Only
// the event's last owner may call it, once. Strings taken from the
// records stay valid. Events that no Parser made (verdicts, alerts) have
// nothing to give back.
//
// An event a Reassembler made goes back to it for reuse: it is cleared
// (poisoned in test binaries), keeping only the room of its Records
// slice. A second Release before the reuse does nothing.
func (ev *Event) Release() {
	recs := ev.Records
	for _, r := range recs {
		r.release()
	}
	ev.Records = nil
	if l := ev.home; l != nil {
		clear(recs)
		if poisonReleased {
			*ev = Event{ID: EventID{Node: ReleasedMarker}, Enrichment: Enrichment{Tags: releasedTags}}
		} else {
			*ev = Event{}
		}
		ev.Records = recs[:0]
		l.put(ev)
	}
}

// releasedTags are a poisoned event's tags (full: an append copies).
var releasedTags = []string{ReleasedMarker}

// maxFreeEvents bounds the released events a reassembler keeps for reuse
// (about 600 bytes each); more are left to the garbage collector. The
// events in flight are bounded by the enrichment queue and the open
// events, a few hundred in replay.
const maxFreeEvents = 1024

// eventList is a reassembler's released events: Release adds to it from
// any goroutine; the reassembler takes them all at once when it has none
// left (see Reassembler.newEvent).
type eventList struct {
	mu  sync.Mutex
	evs []*Event
}

func (l *eventList) put(ev *Event) {
	l.mu.Lock()
	if len(l.evs) < maxFreeEvents {
		l.evs = append(l.evs, ev)
	}
	l.mu.Unlock()
}

// take moves every event of l to the end of dst.
func (l *eventList) take(dst []*Event) []*Event {
	l.mu.Lock()
	dst = append(dst, l.evs...)
	clear(l.evs)
	l.evs = l.evs[:0]
	l.mu.Unlock()
	return dst
}

// newSlab returns an empty slab: a recycled one, or a new one with room
// for at least fields fields.
func (p *Parser) newSlab(fields int) *slab {
	if p.free == nil {
		p.free = &slabList{}
	}
	if fields <= slabFields {
		if s := p.free.get(); s != nil {
			return s
		}
	}
	return &slab{recs: make([]Record, 0, slabRecords), fields: make([]Field, 0, max(slabFields, fields)), free: p.free}
}

// retire hands the current slab over to the releases of its records.
func (p *Parser) retire() {
	s := p.cur
	if s == nil {
		return
	}
	p.cur = nil
	if s.refs.Add(s.handed) == 0 {
		s.recycle()
	}
}

// begin starts a record: the current slab gets a free record slot, and
// the record's fields start at the end of its fields.
func (p *Parser) begin() {
	if p.cur == nil || len(p.cur.recs) == cap(p.cur.recs) || len(p.cur.fields) == cap(p.cur.fields) {
		p.retire()
		p.cur = p.newSlab(0)
	}
	p.run = len(p.cur.fields)
}

// newRecord takes the slot of the record being parsed from the slab that
// holds its fields (begin left one free there, and a slab the fields moved
// to is new). The caller sets every field of the record, slab included.
func (p *Parser) newRecord() *Record {
	s := p.cur
	s.recs = s.recs[:len(s.recs)+1]
	s.handed++
	return &s.recs[len(s.recs)-1]
}

// addField appends f to the record being parsed. When the slab's fields
// are full, the record's fields so far move to a new slab (the records
// before it keep the old one, which is retired).
func (p *Parser) addField(f Field) {
	s := p.cur
	if len(s.fields) == cap(s.fields) {
		n := len(s.fields) - p.run
		ns := p.newSlab(2 * n)
		ns.fields = append(ns.fields, s.fields[p.run:]...)
		p.retire()
		p.cur, p.run = ns, 0
		s = ns
	}
	s.fields = append(s.fields, f)
}

// fields returns the record's fields from index from to to of its run
// (nil when empty), capped so that appending to them cannot touch another
// record's.
func (p *Parser) fields(from, to int) []Field {
	if from == to {
		return nil
	}
	run := p.cur.fields[p.run:]
	return run[from:to:to]
}

// alloc returns n bytes from the byte slab. Decoded bytes are never
// reused: strings made from them stay valid after Release.
func (p *Parser) alloc(n int) []byte {
	if cap(p.buf)-len(p.buf) < n {
		p.buf = make([]byte, 0, max(slabBytes, n))
	}
	start := len(p.buf)
	p.buf = p.buf[:start+n]
	return p.buf[start : start+n : start+n]
}
