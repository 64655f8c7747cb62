package sigma

import (
	mathbits "math/bits"
	"slices"
	"strings"
)

// An anchor is a fact a rule cannot match without: some field of the event
// has an exact (lower-case) value, or a path field has an exact base
// name. Rules are indexed by their anchors, so that an event is evaluated
// only against the rules whose anchors it has, plus the rules without one.
type anchor struct {
	field int // anchorField of the auditd or mapped field name
	key   string
	types []uint16 // service: auditd: the types of the records the field is in (nil: any)
}

// anchorField returns the number of field f among the fields anchors are
// taken from, or -1: fields with a single, short value whose exact value
// or base name rules name. Of the mapped categories only Image is used
// (doc.walk). euid anchors rules for a web server's user (Webshell Remote
// Command Execution: euid 33), which would otherwise be anchored by the
// SYSCALL execve every exec has.
func anchorField(f string) int {
	for i, n := range anchorNames {
		if n == f {
			return i
		}
	}
	return -1
}

const (
	anchorImage     = 6
	numAnchorFields = 7
)

// anchorNames are the field names of the anchor fields, by number.
var anchorNames = [numAnchorFields]string{"a0", "comm", "SYSCALL", "key", "euid", "exe", "Image"}

// isPathField reports whether the anchor field numbered f has its base
// name taken as anchor key (exe, Image).
func isPathField(f int) bool { return f >= 5 }

// anchors returns a set of anchors at least one of which the event has
// whenever r matches, or nil when the rule has no such set.
func (r *Rule) anchors() []anchor {
	return needs[anchor]{cond: func(m *fieldMap, c *fieldCond) []anchor { return c.anchors(m.types) },
		rank: func(as []anchor) int { return -len(as) }}.rule(r)
}

// needs finds, for a rule, a set of facts (anchors, literals) at least
// one of which the event has whenever the rule matches; nil means no such
// set is known. cond gives the set of one field condition (of the map m)
// and kw that of a keyword selection (nil: none); rank orders two sets by
// how much they prune (higher is better).
type needs[T any] struct {
	cond func(m *fieldMap, c *fieldCond) []T
	kw   func(*keywords) []T
	fmap func(*fieldMap) []T // the set of a map as a whole (nil: none)
	rank func([]T) int
}

func (n needs[T]) rule(r *Rule) []T { return n.node(r, r.cond) }

func (n needs[T]) node(r *Rule, x *node) []T {
	switch x.kind {
	case nodeSel:
		return n.sel(&r.sels[x.sel])
	case nodeAnd, nodeAllOf:
		var best []T
		each := func(as []T) {
			if as != nil && (best == nil || n.rank(as) > n.rank(best)) {
				best = as
			}
		}
		for _, k := range x.kids {
			each(n.node(r, k))
		}
		for _, i := range x.sels {
			each(n.sel(&r.sels[i]))
		}
		return best
	case nodeOr, nodeOneOf:
		var all []T
		for _, k := range x.kids {
			as := n.node(r, k)
			if as == nil {
				return nil
			}
			all = append(all, as...)
		}
		for _, i := range x.sels {
			as := n.sel(&r.sels[i])
			if as == nil {
				return nil
			}
			all = append(all, as...)
		}
		return all
	}
	return nil // not: no set
}

// sel gives the set of a selection: the union of its maps' sets (any map
// may match), each map's being the best of its conditions' sets.
func (n needs[T]) sel(sel *selection) []T {
	if sel.kw != nil {
		if n.kw == nil {
			return nil
		}
		return n.kw(sel.kw)
	}
	if len(sel.maps) == 0 {
		return nil
	}
	var out []T
	for i := range sel.maps {
		var best []T
		if n.fmap != nil {
			best = n.fmap(&sel.maps[i])
		}
		for j := range sel.maps[i].conds {
			if as := n.cond(&sel.maps[i], &sel.maps[i].conds[j]); as != nil && (best == nil || n.rank(as) > n.rank(best)) {
				best = as
			}
		}
		if best == nil {
			return nil
		}
		out = append(out, best...)
	}
	return out
}

// anchors of a condition whose every value gives an exact key, in the
// records of types (nil: any).
func (c *fieldCond) anchors(types []uint16) []anchor {
	af := anchorField(c.name)
	if af < 0 || c.neq || c.all || c.null || c.exists != 0 || len(c.vals) == 0 {
		return nil
	}
	base := isPathField(af)
	out := make([]anchor, 0, len(c.vals))
	for _, v := range c.vals {
		key := strings.ToLower(v.s)
		switch {
		case v.op == opEq && !base:
		case base && (v.op == opEq || v.op == opSuffix) && strings.Contains(key, "/"):
			key = key[strings.LastIndexByte(key, '/')+1:]
			if key == "" {
				return nil
			}
		default:
			return nil
		}
		out = append(out, anchor{field: af, key: key, types: types})
	}
	return out
}

// index holds the rules of one kind by anchor, and their prefilter.
type index struct {
	rules    []*Rule
	byAnchor [numAnchorFields]map[string][]int // by field and key: rule positions, ascending
	// By field: bit keyHash of each key (a.anchor tests it before it
	// lower-cases and looks up an ASCII value).
	keyBits [numAnchorFields][keyBitWords]uint64
	free    []uint64 // bit i: rule i has no anchors
	// The prefilter's facts are numbered: the literals of lits first,
	// then the record types of typeFacts. lits is nil when the prefilter
	// is off.
	lits      *acMatcher
	litTexts  []string // the literals of lits, by fact
	typeFacts []typeFact
	typeMask  uint64    // the typeBit of each of their types
	byLit     [][]int32 // by fact: the positions of the rules whose set holds it
	filtered  []uint64  // bit i: rule i has a fact set
	scope     scope     // what the walk reads for the facts and anchors
}

// typeFact is the fact "the event has a record of type typ" (service:
// auditd: a field map that names only record types has no literal).
type typeFact struct {
	typ uint16
	id  int32
}

func newIndex(rules []*Rule) *index {
	words := (len(rules) + 63) / 64
	x := &index{rules: rules, filtered: make([]uint64, words), free: make([]uint64, words)}
	ids := map[string]int32{}
	var facts []string
	for i, r := range rules {
		as := r.anchors()
		fs := literalNeeds.rule(r)
		x.scope.add(r, i, fs, as)
		if as == nil {
			x.free[i>>6] |= 1 << (i & 63)
		}
		for _, a := range as {
			m := x.byAnchor[a.field]
			if m == nil {
				m = map[string][]int{}
				x.byAnchor[a.field] = m
			}
			if l := m[a.key]; len(l) == 0 || l[len(l)-1] != i {
				m[a.key] = append(l, i)
			}
			if isASCII(a.key) {
				h := keyHash(a.key)
				x.keyBits[a.field][h>>6] |= 1 << (h & 63)
			}
		}
		for _, f := range fs {
			l := f.key
			id, ok := ids[l]
			if !ok {
				id = int32(len(facts))
				ids[l] = id
				facts = append(facts, l)
				x.byLit = append(x.byLit, nil)
			}
			if rs := x.byLit[id]; len(rs) == 0 || rs[len(rs)-1] != int32(i) {
				x.byLit[id] = append(rs, int32(i))
			}
			x.filtered[i>>6] |= 1 << (i & 63)
		}
	}
	x.scope.finish()
	if len(facts) == 0 {
		return x
	}
	// Literals first (the automaton numbers them from 0), then types.
	var lits []string
	byLit := make([][]int32, 0, len(facts))
	for i, f := range facts {
		if _, ok := typeOfFact(f); !ok {
			lits = append(lits, f)
			byLit = append(byLit, x.byLit[i])
		}
	}
	for i, f := range facts {
		if t, ok := typeOfFact(f); ok {
			x.typeFacts = append(x.typeFacts, typeFact{typ: t, id: int32(len(byLit))})
			x.typeMask |= typeBit(t)
			byLit = append(byLit, x.byLit[i])
		}
	}
	x.byLit = byLit
	x.lits, x.litTexts = newACMatcher(lits), lits
	x.scope.number(func(l string) int32 { return int32(slices.Index(lits, l)) })
	return x
}

// shareLiterals gives the indexes one automaton over the literals of
// all of them (renumbering their facts), so that a text several kinds
// read is scanned once per event: the executable and the command line,
// which service: auditd rules read in the records and process_creation
// rules as Image and CommandLine (see auditCtx.walk and doc.walk).
func shareLiterals(xs ...*index) {
	ids := map[string]int32{}
	var all []string
	for _, x := range xs {
		if x == nil || x.lits == nil {
			return
		}
		for _, l := range x.litTexts {
			if _, ok := ids[l]; !ok {
				ids[l] = int32(len(all))
				all = append(all, l)
			}
		}
	}
	m := newACMatcher(all)
	for _, x := range xs {
		byLit := make([][]int32, len(all), len(all)+len(x.typeFacts))
		for i, l := range x.litTexts {
			byLit[ids[l]] = x.byLit[i]
		}
		for j := range x.typeFacts {
			byLit = append(byLit, x.byLit[len(x.litTexts)+j])
			x.typeFacts[j].id = int32(len(all) + j)
		}
		x.byLit, x.lits, x.litTexts = byLit, m, all
		x.scope.number(func(l string) int32 { return ids[l] })
	}
}

// walker is an event as one kind of rules reads it.
type walker interface {
	// walk visits the event once: it passes every anchor field value
	// to a.anchor and, when found is not nil, scans the fields the
	// chosen fact sets of x's rules name (x.scope) for the literals of
	// x.lits into found, a field that only anchored rules name only when
	// one of them is a candidate by its anchors, and sets the type facts
	// of the event's records.
	walk(x *index, a *auditCtx, found []uint64)
}

// candidates returns the positions of the rules an event may match, in
// ascending order without repeats: the rules without anchors and those
// with an anchor among the (field, value) pairs w passes to a.anchor,
// less those with a fact set of which w finds nothing. The slice is
// a.cand, valid until the next call.
func (x *index) candidates(a *auditCtx, w walker) []int {
	a.bits = append(a.bits[:0], x.free...)
	var found []uint64
	if x.lits != nil {
		n := (len(x.byLit) + 63) / 64
		if cap(a.found) < n {
			a.found = make([]uint64, n)
		} else {
			a.found = a.found[:n]
			clear(a.found)
		}
		found = a.found
	}
	w.walk(x, a, found)
	if found != nil {
		for i, bits := range a.shared {
			found[i] |= bits
		}
		// keep: the rules without a fact set, and those with a fact found
		keep := append(a.keep[:0], x.filtered...)
		for i := range keep {
			keep[i] = ^keep[i]
		}
		for w, bits := range found {
			for bits != 0 {
				id := w<<6 | mathbits.TrailingZeros64(bits)
				bits &= bits - 1
				for _, i := range x.byLit[id] {
					keep[i>>6] |= 1 << (i & 63)
				}
			}
		}
		for i := range keep {
			a.bits[i] &= keep[i]
		}
		a.keep = keep
	}
	a.cand = a.cand[:0]
	for w, bits := range a.bits {
		for bits != 0 {
			a.cand = append(a.cand, w<<6|mathbits.TrailingZeros64(bits))
			bits &= bits - 1
		}
	}
	return a.cand
}

// setType sets in found the fact of record type t, if x has one.
func (x *index) setType(t uint16, found []uint64) {
	for _, f := range x.typeFacts {
		if f.typ == t {
			found[f.id>>6] |= 1 << (f.id & 63)
		}
	}
}

// keyHash hashes a text by its length and its first and last bytes with
// ASCII letters lower-cased, to a bit of index.keyBits: a text and its
// lower-case form hash alike when it is ASCII.
func keyHash(s string) uint32 {
	x := uint32(len(s)) << 16
	if s != "" {
		x |= uint32(foldASCII[s[0]])<<8 | uint32(foldASCII[s[len(s)-1]])
	}
	return x * 0x9E3779B1 >> (32 - keyBitsLog)
}

// keyBitsLog is the log2 of the bits of a keyBits filter: with the 136
// Image keys of SigmaHQ's process_creation rules, about one value in
// thirty that is no key passes it by chance (the filter it replaced, by a
// key's length and first byte, let through the Image of every exec of
// make corpus's corpus).
const (
	keyBitsLog  = 12
	keyBitWords = 1 << keyBitsLog / 64
)

// mayBeKey reports whether the value v (of a path, its base name) may be,
// lower-cased, a key of the anchor field f: false only when it is ASCII
// and no key has its keyHash (its lower-case form has its length and,
// lower-cased, its first and last bytes).
func (x *index) mayBeKey(f int, v string) bool {
	h := keyHash(v)
	return x.keyBits[f][h>>6]&(1<<(h&63)) != 0 || !isASCII(v)
}

// anchor adds to the candidates the rules of x anchored on the anchor
// field f having the value v (lower-cased here: of a path, only the base
// name is).
func (a *auditCtx) anchor(x *index, f int, v string) {
	m := x.byAnchor[f]
	if m == nil {
		return
	}
	if isPathField(f) {
		v = v[strings.LastIndexByte(v, '/')+1:]
	}
	if !x.mayBeKey(f, v) {
		return
	}
	for _, i := range m[a.lower(v)] {
		a.bits[i>>6] |= 1 << (i & 63)
	}
}
