package sigma

import (
	"slices"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// What a service: auditd rule reads of an event. A field map reads the
// fields it names (raw or ENRICHED, see recordField; an EXECVE record's
// arguments aN reassembled, from the summary); a keyword search
// reads every value of one record, and of an EXECVE record the command
// line too (see Rule.perRecord). The per-event walk (auditCtx.walk) looks
// only at those values, in one pass that also collects the anchors.

// recordTypeNeeds finds the record types one of which the record a
// per-record rule matches on has (nil: any type).
var recordTypeNeeds = needs[uint16]{
	cond: func(*fieldMap, *fieldCond) []uint16 { return nil },
	fmap: func(m *fieldMap) []uint16 { return m.types },
	rank: func(ts []uint16) int { return -len(ts) },
}

// A fieldRead is what the walk does with the fields of one name in the
// records of one type.
type fieldRead struct {
	name   string
	anchor int  // the anchor field it is (anchorField), or -1
	scan   bool // scanned for literals: a rule without anchors reads it for its facts
	// Else, when not nil: the positions of the anchored rules that read
	// it for their facts, ascending. It is scanned only when one of them
	// is a candidate by its anchors: the others cannot match.
	gate []int32
	next uint16 // the next fieldRead of the same hash slot, plus one (0: none)
	// The literals the chosen fact sets look for in it (lits) and, once
	// the automaton is built, with their numbers (direct, unless many):
	// a value of it is searched for those alone (scanDirect) rather than
	// scanned with the automaton.
	lits   []string
	direct []litRef
}

// many reports whether f's values are searched with the automaton: more
// than maxDirect literals are looked for in it.
func (f *fieldRead) many() bool { return len(f.lits) > maxDirect }

// maxDirect is the most literals a field's value is searched for one by
// one (scanDirect): beyond, the automaton's one pass is cheaper.
const maxDirect = 4

// litRef is a literal and its number in the index's automaton.
type litRef struct {
	text string
	id   int32
}

// addLits adds ls to the literals looked for in f.
func (f *fieldRead) addLits(ls ...string) {
	for _, l := range ls {
		if !slices.Contains(f.lits, l) {
			f.lits = append(f.lits, l)
		}
	}
}

// reads is what the walk reads in the records of one type: the named
// fields, found through a small hash table (nameHash), or every value
// (whole).
type reads struct {
	whole    bool // a keyword search reads every value (and an EXECVE's command line)
	typeText bool // a condition reads the record type as a text
	fields   []fieldRead
	args     []argRead   // the argument names (a0, a1, ...) among fields
	slot     [256]uint16 // by nameHash: the first fieldRead, plus one (0: none)
}

// nameHash hashes a non-empty name by its first and last bytes and its
// length.
func nameHash(n string) uint8 {
	return uint8(uint(n[0])*7 + uint(n[len(n)-1])*3 + uint(len(n))*29)
}

// find returns the fieldRead of the name n, or nil when no rule reads n.
// Most names of an event are ruled out by an empty slot.
func (rs *reads) find(n string) *fieldRead {
	if n == "" {
		return nil
	}
	for i := rs.slot[nameHash(n)]; i != 0; i = rs.fields[i-1].next {
		if f := &rs.fields[i-1]; f.name == n {
			return f
		}
	}
	return nil
}

// next returns the position of the first field of fs from i on whose
// name has a taken hash slot (len(fs): none): most names are ruled out
// by this small loop, without the field work of walkFields around them.
func (rs *reads) next(fs []audit.Field, i int) int {
	for ; i < len(fs); i++ {
		if n := fs[i].Name; n != "" && rs.slot[nameHash(n)] != 0 {
			return i
		}
	}
	return i
}

// field returns the fieldRead of n, added if it is not there yet.
func (rs *reads) field(n string) *fieldRead {
	if f := rs.find(n); f != nil {
		return f
	}
	h := nameHash(n)
	rs.fields = append(rs.fields, fieldRead{name: n, anchor: -1, next: rs.slot[h]})
	rs.slot[h] = uint16(len(rs.fields))
	return &rs.fields[len(rs.fields)-1]
}

// merge adds what o reads to rs.
func (rs *reads) merge(o *reads) {
	rs.whole = rs.whole || o.whole
	rs.typeText = rs.typeText || o.typeText
	for _, f := range o.fields {
		g := rs.field(f.name)
		g.add(f.scan, f.gate...)
		g.addLits(f.lits...)
		if f.anchor >= 0 {
			g.anchor = f.anchor
		}
	}
}

// add makes f scanned (scan), or gated by the rules at positions gate.
func (f *fieldRead) add(scan bool, gate ...int32) {
	f.scan = f.scan || scan
	if f.scan {
		f.gate = nil
		return
	}
	for _, i := range gate {
		if !slices.Contains(f.gate, i) {
			f.gate = append(f.gate, i)
		}
	}
	slices.Sort(f.gate)
}

// scope is what the rules of an index read for their fact sets and
// anchors (the literal prefilter and the anchor index). Fields no chosen
// fact set or anchor names are not looked at: the prefilter only needs
// to find one fact of each rule that matches, from the set newIndex chose.
type scope struct {
	// service: auditd: by record type (types, parallel to byType; mask
	// has their typeBit), and for every other type.
	types  []uint16
	byType []reads
	mask   uint64
	any    reads
	// Mapped categories: bit f of docScan: field f is scanned; else
	// docGate[f] (nil: none) as fieldRead.gate.
	docScan uint32
	docGate [numFields][]int32
}

// of returns what the walk reads in records of type t.
func (sc *scope) of(t uint16) *reads {
	if sc.mask&typeBit(t) != 0 {
		if i := slices.Index(sc.types, t); i >= 0 {
			return &sc.byType[i]
		}
	}
	return &sc.any
}

// typed returns the reads of type t, added if not there yet.
func (sc *scope) typed(t uint16) *reads {
	if i := slices.Index(sc.types, t); i >= 0 {
		return &sc.byType[i]
	}
	sc.types = append(sc.types, t)
	sc.byType = append(sc.byType, reads{})
	sc.mask |= typeBit(t)
	return &sc.byType[len(sc.byType)-1]
}

// each calls f with the reads of every type of types, or of any type
// when types is nil.
func (sc *scope) each(types []uint16, f func(*reads)) {
	if types == nil {
		f(&sc.any)
	}
	for _, t := range types {
		f(sc.typed(t))
	}
}

// add records what rule i reads: the fields of its fact set facts and
// of its anchors as; when as is nil (no anchors) its facts are scanned in
// every event.
func (sc *scope) add(r *Rule, i int, facts []fact, as []anchor) {
	gate := []int32{int32(i)}
	if r.kind != kindAuditd {
		for _, f := range facts {
			switch {
			case f.c != nil && as == nil:
				sc.docScan |= 1 << f.c.fid
			case f.c != nil:
				// Rules come in ascending order: once each.
				if g := sc.docGate[f.c.fid]; len(g) == 0 || g[len(g)-1] != int32(i) {
					sc.docGate[f.c.fid] = append(g, int32(i))
				}
			default: // a keyword search reads every field
				sc.docScan = 1<<numFields - 1
			}
		}
		return
	}
	for _, f := range facts {
		switch {
		case f.c == nil && f.m == nil:
			if _, ok := typeOfFact(f.key); !ok { // a keyword search
				sc.each(r.recTypes, func(rs *reads) { rs.whole = true })
			}
		case f.c.name == "type":
			sc.each(f.m.types, func(rs *reads) { rs.typeText = true })
		default:
			sc.each(f.m.types, func(rs *reads) {
				fr := rs.field(f.c.name)
				fr.add(as == nil, gate...)
				fr.addLits(f.key)
			})
		}
	}
	for _, a := range as {
		sc.each(a.types, func(rs *reads) { rs.field(anchorNames[a.field]).anchor = a.field })
	}
}

// finish gives every type what any type reads, once every rule is added.
func (sc *scope) finish() {
	for i := range sc.byType {
		sc.byType[i].merge(&sc.any)
	}
	for t := -1; t < len(sc.byType); t++ {
		rs := &sc.any
		if t >= 0 {
			rs = &sc.byType[t]
		}
		for i := range rs.fields {
			if n, ok := argNumber(rs.fields[i].name); ok {
				rs.args = append(rs.args, argRead{i, n})
			}
		}
	}
	for f := range sc.docGate {
		if sc.docScan&(1<<f) != 0 {
			sc.docGate[f] = nil
		}
	}
}

// number gives the fields read by name their literals' numbers in the
// automaton (id), once it is built or renumbered.
func (sc *scope) number(id func(string) int32) {
	for t := -1; t < len(sc.byType); t++ {
		rs := &sc.any
		if t >= 0 {
			rs = &sc.byType[t]
		}
		for i := range rs.fields {
			f := &rs.fields[i]
			f.direct = nil
			if !f.many() {
				for _, l := range f.lits {
					f.direct = append(f.direct, litRef{text: l, id: id(l)})
				}
			}
		}
	}
}

// gated reports whether one of the rules at positions gate is a
// candidate (bit set in bits).
func gated(gate []int32, bits []uint64) bool {
	for _, i := range gate {
		if bits[i>>6]&(1<<(i&63)) != 0 {
			return true
		}
	}
	return false
}

// walk implements walker for service: auditd rules: every value of the
// records keyword searches may read (with the command line for an
// EXECVE record), the fields of the others that the rules' fact sets or
// anchors name (see scope); a field only anchored rules read for their
// facts is scanned at the end, when one of those rules is a candidate.
func (a *auditCtx) walk(x *index, _ *auditCtx, found []uint64) {
	sc, m := &x.scope, x.lits
	cmdline, argsRead := false, false
	for _, r := range a.ev.Records {
		if r == nil {
			continue
		}
		if found != nil && x.typeMask&typeBit(r.TypeNum) != 0 {
			x.setType(r.TypeNum, found)
		}
		rs := sc.of(r.TypeNum)
		whole := found != nil && rs.whole
		if found != nil && rs.typeText {
			m.scanText(0, r.Type, found, &a.scratch)
		}
		if !whole && len(rs.fields) == 0 {
			continue
		}
		// The command line of the event's one EXECVE record holds every
		// argument when their numbers agree (and none is in chunks, a1[0]):
		// its scan covers theirs.
		args := whole && r.TypeNum == 1309 && !cmdline && len(a.s.Args) > 1
		if args {
			cmdline = true
			dst := found
			if len(a.shared) > 0 {
				dst, a.cmdShared = a.shared, true
			}
			a.scanLine(m, a.s.Args, dst)
		}
		execve := r.TypeNum == 1309
		nargs, chunks := a.walkFields(x, rs, r.Fields, whole, args, execve, found)
		a.walkFields(x, rs, r.Interp, whole, false, execve, found)
		if args && (a.execves != 1 || chunks || nargs != len(a.s.Args)) {
			for i := range r.Fields {
				if isArgName(r.Fields[i].Name) {
					a.scanValue(m, found, r.Fields[i].Value)
				}
			}
		}
		if execve && !argsRead {
			argsRead = true
			a.walkArgs(x, rs, whole, cmdline, found)
		}
	}
	for _, l := range a.later {
		switch {
		case !gated(l.f.gate, a.bits):
		case l.f.many():
			a.scanValue(m, found, l.v)
		default:
			a.scanDirect(l.f.direct, found, l.v)
		}
	}
	clear(a.later)
	a.later = a.later[:0]
}

// walkFields walks the fields fs of a record of which the rules read rs
// (every value when whole), for walk. Of an EXECVE record (execve), the
// argument fields (a0, a1, ...) are left to walkArgs, but for the scan
// of every value (whole) keyword searches ask; with args, it scans no
// argument field but counts them (nargs), and tells whether a field name
// holds '[' (chunks).
func (a *auditCtx) walkFields(x *index, rs *reads, fs []audit.Field, whole, args, execve bool, found []uint64) (nargs int, chunks bool) {
	for i := 0; i < len(fs); i++ {
		if !whole {
			if i = rs.next(fs, i); i == len(fs) {
				break
			}
		}
		f := &fs[i]
		if execve && isArgName(f.Name) {
			switch {
			case found == nil:
			case args:
				nargs++
			case whole:
				a.scanValue(x.lits, found, f.Value)
			}
			continue
		}
		fr := rs.find(f.Name)
		if fr == nil && !whole {
			continue
		}
		if fr != nil && fr.anchor >= 0 {
			a.anchor(x, fr.anchor, f.Value)
		}
		switch {
		case found == nil:
			// anchors only
		case whole || fr.scan:
			chunks = chunks || args && strings.IndexByte(f.Name, '[') >= 0
			switch {
			case len(a.shared) > 0 && !a.exeShared && f.Name == "exe" && f.Value == a.s.Exe:
				// for process_creation's Image too: every literal
				a.exeShared = true
				a.scanValue(x.lits, a.shared, f.Value)
			case whole || fr.many():
				a.scanValue(x.lits, found, f.Value)
			default:
				a.scanDirect(fr.direct, found, f.Value)
			}
		case fr.gate != nil:
			a.later = append(a.later, laterScan{f.Value, fr})
		}
	}
	return nargs, chunks
}

// walkArgs reads, for walk, the arguments of the event's EXECVE records
// as field maps see them (recordField: aN is the summary's argument N,
// its chunks and records joined), once per event: the argument names
// of rs (every value when whole). scanned: the command line, which holds
// every argument, is scanned already.
func (a *auditCtx) walkArgs(x *index, rs *reads, whole, scanned bool, found []uint64) {
	for _, ar := range rs.args {
		if ar.n >= len(a.s.Args) {
			continue
		}
		fr, v := &rs.fields[ar.at], a.s.Args[ar.n]
		if fr.anchor >= 0 {
			a.anchor(x, fr.anchor, v)
		}
		switch {
		case found == nil, scanned:
			// anchors only, or scanned with the command line
		case whole || fr.scan:
			if whole || fr.many() {
				a.scanValue(x.lits, found, v)
			} else {
				a.scanDirect(fr.direct, found, v)
			}
		case fr.gate != nil:
			a.later = append(a.later, laterScan{v, fr})
		}
	}
}

// argRead is an argument name of reads.fields: its position there, and
// the argument's number N of aN.
type argRead struct{ at, n int }

// laterScan is a value to scan once the anchors are known, if one of the
// rules of gate is a candidate.
type laterScan struct {
	v string
	f *fieldRead
}

// isArgName reports whether an EXECVE field called n is an argument
// (a0, a1, ...).
func isArgName(n string) bool {
	_, ok := argNumber(n)
	return ok
}

// argNumber returns N of an EXECVE argument name aN (at most 9 digits,
// which no argc reaches).
func argNumber(n string) (int, bool) {
	if len(n) < 2 || len(n) > 10 || n[0] != 'a' {
		return 0, false
	}
	v := 0
	for i := 1; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return 0, false
		}
		v = v*10 + int(n[i]-'0')
	}
	return v, true
}

// scanArgs scans args joined by spaces (the command line) for the
// literals of m, without joining them, and returns the state reached.
func (sc *scratch) scanArgs(m *acMatcher, args []string, found []uint64) int32 {
	st := int32(0)
	for i, arg := range args {
		if i > 0 {
			st = m.scanText(st, " ", found, sc)
		}
		st = m.scanText(st, arg, found, sc)
	}
	return st
}

// scanLine finds what scanArgs finds in the command line args, the first
// argument (the program's path, the same from one exec to the next)
// through the memo: the literals it holds and the automaton's state after
// it are remembered, and the scan goes on from that state, so literals
// that span the first space are still found.
func (sc *scratch) scanLine(m *acMatcher, args []string, found []uint64) {
	if len(args) == 0 {
		return
	}
	st := sc.memo.scan(m, found, sc, args[0])
	if len(args) == 1 {
		return
	}
	// The rest, joined, by scanRest: the state after it is not needed.
	start := len(sc.arena)
	for _, arg := range args[1:] {
		sc.arena = append(sc.arena, ' ')
		sc.arena = append(sc.arena, arg...)
	}
	m.scanRest(st, sc.view(start), found, sc)
	sc.arena = sc.arena[:start]
}
