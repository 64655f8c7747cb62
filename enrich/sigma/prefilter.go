package sigma

import (
	"hash/maphash"
	mathbits "math/bits"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// The literal prefilter. Most string values a rule compares (equality,
// prefix, suffix, substring, or a wildcard pattern's literal runs) must
// occur in the lower-cased text of some field whenever the value matches.
// At load, each rule gets a set of such literals at least one of which the
// event holds whenever the rule matches (needs, as for anchors); per
// event, one Aho-Corasick pass over the field values finds every literal
// of the index at once, and a rule is evaluated only when one of its
// literals was found. The prefilter only rules out: a rule it keeps is
// evaluated in full.

// minLiteral is the shortest literal the prefilter uses: shorter ones
// occur in nearly every event and only cost scanning time.
const minLiteral = 2

// literals returns lower-case ASCII texts one of which the lower-cased
// field text contains whenever v matches it, or nil when v has none.
func (v *value) literals() []string {
	var s string
	switch v.op {
	case opEq, opPrefix, opSuffix, opContains:
		s = v.s
	case opGlob:
		for _, t := range v.glob {
			if len(t.lit) > len(s) {
				s = t.lit
			}
		}
	case opRe:
		return v.reLits
	default:
		return nil
	}
	if !usableLiteral(s) {
		return nil
	}
	if v.cased {
		b := []byte(s)
		lowerASCII(b)
		s = string(b)
	}
	return []string{s}
}

// usableLiteral reports whether the prefilter can look for s.
func usableLiteral(s string) bool {
	return len(s) >= minLiteral && strings.IndexByte(s, 0) < 0 && isASCII(s)
}

// literals of a field condition: the union of its values' sets (any
// value may match), or the best one with all (every value must match).
// Negated, existence and null tests have none.
func (c *fieldCond) literals() []string {
	if c.neq || c.null || c.exists != 0 {
		return nil
	}
	return valueLiterals(c.vals, c.all)
}

// literals of a keyword selection, as for a field condition.
func (kw *keywords) literals() []string { return valueLiterals(kw.vals, kw.all) }

// valueLiterals: without all, the union of every value's literals (nil
// when one has none); with all, the best union of one rule value's
// variants (see value.more), since each rule value must match.
func valueLiterals(vals []value, all bool) []string {
	if len(vals) == 0 {
		return nil
	}
	if !all {
		return variantLiterals(vals)
	}
	var out []string
	for start, i := 0, 0; i < len(vals); i++ {
		if vals[i].more {
			continue
		}
		if ls := variantLiterals(vals[start : i+1]); ls != nil && (out == nil || rankOf(ls) > rankOf(out)) {
			out = ls
		}
		start = i + 1
	}
	return out
}

// variantLiterals is the union of the literals of vals, nil when one of
// them has none.
func variantLiterals(vals []value) []string {
	var out []string
	for i := range vals {
		ls := vals[i].literals()
		if ls == nil {
			return nil
		}
		out = append(out, ls...)
	}
	return out
}

// maxReAlternatives bounds the literals taken from one regular expression.
const maxReAlternatives = 16

// reLiterals returns lower-case literals one of which every text the
// regular expression matches contains, or nil when none is known. Case
// folding is ASCII only, so a case-insensitive expression whose literal
// holds k or s (which fold to the Kelvin sign and the long s) gives none.
func reLiterals(re *syntax.Regexp) []string {
	ls, _ := reNeeds(re.Simplify())
	for _, l := range ls {
		if !usableLiteral(l) {
			return nil
		}
	}
	return ls
}

// reNeeds returns a literal set of re (nil: none) and whether re matches
// exactly the texts of the set, so that a concatenation may extend them.
func reNeeds(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpLiteral:
		l := strings.ToLower(string(re.Rune))
		if re.Flags&syntax.FoldCase != 0 && strings.ContainsAny(l, "ks") {
			return nil, false
		}
		return []string{l}, true
	case syntax.OpCharClass:
		var set []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(set) == 4 || r >= utf8.RuneSelf || r == 'k' || r == 'K' || r == 's' || r == 'S' {
					return nil, false
				}
				if l := strings.ToLower(string(r)); !slices.Contains(set, l) {
					set = append(set, l)
				}
			}
		}
		return set, set != nil
	case syntax.OpCapture:
		return reNeeds(re.Sub[0])
	case syntax.OpPlus:
		ls, _ := reNeeds(re.Sub[0])
		return ls, false
	case syntax.OpRepeat:
		if re.Min >= 1 {
			ls, _ := reNeeds(re.Sub[0])
			return ls, false
		}
	case syntax.OpAlternate:
		var all []string
		exact := true
		for _, sub := range re.Sub {
			ls, e := reNeeds(sub)
			if ls == nil {
				return nil, false
			}
			all = append(all, ls...)
			exact = exact && e
		}
		return all, exact
	case syntax.OpConcat:
		var best, run []string
		consider := func(ls []string) {
			if ls != nil && slices.IndexFunc(ls, func(l string) bool { return !usableLiteral(l) }) < 0 &&
				(best == nil || rankOf(ls) > rankOf(best)) {
				best = ls
			}
		}
		exact := true
		for i, sub := range re.Sub {
			ls, e := reNeeds(sub)
			switch {
			case e && run != nil && len(run)*len(ls) <= maxReAlternatives:
				run = product(run, ls)
			case e:
				// a new run: the concatenation is no longer one run
				exact = exact && i == 0
				consider(run)
				run = ls
			default:
				exact = false
				consider(run)
				run = nil
				consider(ls)
			}
		}
		if exact {
			return run, true
		}
		consider(run)
		return best, false
	}
	return nil, false
}

// product returns every a followed by every b.
func product(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return out
}

// A fact is a member of a rule's fact set: a literal and where it is
// looked for, or a record type.
type fact struct {
	key string // the literal, or typeFactKey of the record type
	// The literal is that of condition c of map m (read in m's records,
	// or as the mapped field c.fid), or of a keyword search when c is nil.
	m *fieldMap
	c *fieldCond
}

// factsOf returns the literals ls found in the field of c (nil: by a
// keyword search) as facts, nil when ls is nil.
func factsOf(ls []string, m *fieldMap, c *fieldCond) []fact {
	if ls == nil {
		return nil
	}
	out := make([]fact, len(ls))
	for i, l := range ls {
		out[i] = fact{key: l, m: m, c: c}
	}
	return out
}

// literalNeeds finds a rule's fact set: literals, and for a service:
// auditd field map that has no literal, the record types it names (see
// typeFact), ranked below any literal set.
var literalNeeds = needs[fact]{
	cond: func(m *fieldMap, c *fieldCond) []fact { return factsOf(c.literals(), m, c) },
	kw:   func(kw *keywords) []fact { return factsOf(kw.literals(), nil, nil) },
	fmap: func(m *fieldMap) []fact {
		var out []fact
		for _, t := range m.types {
			out = append(out, fact{key: typeFactKey(t)})
		}
		return out
	},
	rank: func(fs []fact) int {
		short := 1 << 20
		for _, f := range fs {
			if _, ok := typeOfFact(f.key); ok {
				return -len(fs)
			}
			short = min(short, len(f.key))
		}
		return literalRank(short, len(fs))
	},
}

// typeFactKey is the fact "the event has a record of type t" among the
// literals: it starts with NUL, which no literal holds.
func typeFactKey(t uint16) string { return string([]byte{0, byte(t >> 8), byte(t)}) }

// typeOfFact returns the record type of a fact made by typeFactKey.
func typeOfFact(f string) (uint16, bool) {
	if len(f) == 3 && f[0] == 0 {
		return uint16(f[1])<<8 | uint16(f[2]), true
	}
	return 0, false
}

// literalRank orders literal sets by the length of their shortest
// literal and their size n: the set whose shortest literal is longest
// (short literals are found often), then the smaller.
func literalRank(short, n int) int {
	return min(short, 16)<<16 - min(n, 1<<16-1)
}

// rankOf is literalRank of the literal set ls.
func rankOf(ls []string) int {
	short := 1 << 20
	for _, l := range ls {
		short = min(short, len(l))
	}
	return literalRank(short, len(ls))
}

// acMatcher finds which of a set of lower-case ASCII literals occur in a
// text, case-insensitively for ASCII, in one pass (Aho-Corasick, with the
// transitions of every state precomputed over byte classes). It is
// immutable after newACMatcher and safe for concurrent use.
type acMatcher struct {
	class  [256]uint8 // byte -> class; 0: a byte no literal has
	nclass int
	// delta[s+class] is the state after state s (states are numbered
	// in multiples of nclass), negated when that state ends a literal
	// itself or through a suffix (hit). The root is 0 and ends none.
	delta []int32
	out   []int32 // by state number / nclass: the literal ending there, or -1
	hit   []int32 // the state itself or nearest suffix state ending a literal, or -1
	link  []int32 // for a state ending a literal: the next such state among its suffixes, or -1
	nlits int
	// starts has bit a<<8|b for the first two bytes a, b of every
	// literal (scanRest); short: some literal has one byte.
	starts [1 << 16 / 64]uint64
	short  bool
}

// newACMatcher builds the matcher for lits (literal i is bit i of the
// sets scan fills). Literals must be non-empty lower-case ASCII without
// NUL, and distinct.
func newACMatcher(lits []string) *acMatcher {
	m := &acMatcher{nlits: len(lits)}
	m.nclass = 1
	for _, l := range lits {
		if len(l) < 2 {
			m.short = true
		} else {
			b := uint(l[0])<<8 | uint(l[1])
			m.starts[b>>6] |= 1 << (b & 63)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; m.class[c] == 0 {
				m.class[c] = uint8(m.nclass)
				m.nclass++
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	// The trie, with -1 for a missing child.
	m.delta = make([]int32, m.nclass)
	m.out = []int32{-1}
	for i := range m.delta {
		m.delta[i] = -1
	}
	for id, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			k := int(s)*m.nclass + int(m.class[l[i]])
			if m.delta[k] < 0 {
				m.delta[k] = int32(len(m.out))
				m.out = append(m.out, -1)
				for range m.nclass {
					m.delta = append(m.delta, -1)
				}
			}
			s = m.delta[k]
		}
		m.out[s] = int32(id)
	}
	n := len(m.out)
	fail := make([]int32, n)
	m.hit = make([]int32, n)
	m.link = make([]int32, n)
	// Breadth first: a state's fail and transitions are complete once all
	// shallower states are.
	queue := make([]int32, 0, n)
	for c := range m.nclass {
		if t := m.delta[c]; t < 0 {
			m.delta[c] = 0
		} else {
			fail[t] = 0
			queue = append(queue, t)
		}
	}
	m.hit[0], m.link[0] = -1, -1
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := fail[s]
		m.link[s] = m.hit[f]
		if m.out[s] >= 0 {
			m.hit[s] = s
		} else {
			m.hit[s] = m.hit[f]
		}
		for c := range m.nclass {
			k := int(s)*m.nclass + c
			if t := m.delta[k]; t < 0 {
				m.delta[k] = m.delta[int(f)*m.nclass+c]
			} else {
				fail[t] = m.delta[int(f)*m.nclass+c]
				queue = append(queue, t)
			}
		}
	}
	for k, t := range m.delta {
		if m.hit[t] >= 0 {
			m.delta[k] = -t * int32(m.nclass)
		} else {
			m.delta[k] = t * int32(m.nclass)
		}
	}
	return m
}

// scanRest sets in found the literals of m that end in s, read from
// state st, as scanText does, but does not tell the state reached: where
// the automaton is at its root it steps over every byte that does not
// start, with the next one, a literal's first two bytes (starts; every
// literal has two bytes or more unless m.short), testing a table about a
// third as dear as a transition. Non-ASCII text is scanned as scanText
// does.
func (m *acMatcher) scanRest(st int32, s string, found []uint64, sc *scratch) {
	if m.short {
		m.scanText(st, s, found, sc)
		return
	}
	st0 := st
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			m.scanText(st0, s, found, sc) // again, in lower case
			return
		}
		if st == 0 {
			if i+1 == len(s) {
				return // one byte ends no literal from the root
			}
			if d := s[i+1]; d < utf8.RuneSelf {
				if b := uint(foldASCII[c])<<8 | uint(foldASCII[d]); m.starts[b>>6]&(1<<(b&63)) == 0 {
					continue // no literal starts here: the root again
				}
			}
		}
		st = m.step(st, c, found)
	}
}

// foldASCII maps ASCII upper-case letters to lower case, other bytes to
// themselves.
var foldASCII = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return t
}()

// scanValue sets in found the literals of m the text v holds: a text
// long enough for the memo through it, a shorter one by scanRest.
func (sc *scratch) scanValue(m *acMatcher, found []uint64, v string) {
	if len(v) < memoMin {
		m.scanRest(0, v, found, sc)
		return
	}
	sc.memo.scan(m, found, sc, v)
}

// scanDirect sets in found the literals of lits that the text v holds:
// those a scan of v with the automaton would find among them (in the
// lower-cased text, see scanText), searched one by one.
func (sc *scratch) scanDirect(lits []litRef, found []uint64, v string) {
	if !isASCII(v) {
		v = sc.lower(v)
	}
	for _, l := range lits {
		if containsFold(v, l.text) {
			found[l.id>>6] |= 1 << (l.id & 63)
		}
	}
}

// containsFold reports whether s, its ASCII letters lower-cased, holds
// the non-empty lower-case ASCII text low.
func containsFold(s, low string) bool {
	for i := 0; i+len(low) <= len(s); i++ {
		if foldASCII[s[i]] != low[0] {
			continue
		}
		j := 1
		for j < len(low) && foldASCII[s[i+j]] == low[j] {
			j++
		}
		if j == len(low) {
			return true
		}
	}
	return false
}

// words is the size of the literal sets scan fills.
func (m *acMatcher) words() int { return (m.nlits + 63) / 64 }

// scan continues from state st over s, setting in found the bit of every
// literal that ends in s, and returns the state reached. It stops at the
// first non-ASCII byte and returns ok false, unless all: the caller then
// scans the lower-cased text with all, again from st.
func (m *acMatcher) scan(st int32, s string, found []uint64, all bool) (int32, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf && !all {
			return st, false
		}
		st = m.step(st, c, found)
	}
	return st, true
}

// step returns the state after state st and byte c, setting in found the
// bit of every literal that ends there.
func (m *acMatcher) step(st int32, c byte, found []uint64) int32 {
	st = m.delta[st+int32(m.class[c])]
	if st < 0 {
		st = -st
		for h := m.hit[int(st)/m.nclass]; h >= 0; h = m.link[h] {
			id := m.out[h]
			found[id>>6] |= 1 << (id & 63)
		}
	}
	return st
}

// scanText scans s from state st (see scan), through lower's copy of s
// when s is not ASCII (in sc): ASCII case scan folds itself, but other letters
// may lower-case to ASCII ones.
func (m *acMatcher) scanText(st int32, s string, found []uint64, sc *scratch) int32 {
	if next, ok := m.scan(st, s, found, false); ok {
		return next
	}
	next, _ := m.scan(st, sc.lower(s), found, true)
	return next
}

// textMemo remembers which literals of an automaton the texts scanned
// lately hold, so that a text seen again (the same executable, path,
// directory, key or command line, event after event) is not scanned
// again. It keeps copies of the texts, never the event's strings, and
// forgets everything when the automaton changes (a reload). One goroutine
// uses it at a time.
type textMemo struct {
	m     *acMatcher
	seed  maphash.Seed
	tmp   []uint64
	slots []memoSlot
}

type memoSlot struct {
	text []byte // empty: no text
	n    int    // literals found
	ids  [memoIDs]int32
	st   int32 // the automaton's state after the text, from state 0
}

const (
	memoSlots = 512 // a power of two
	memoIDs   = 6   // a text holding more literals is not remembered
	memoMin   = 16  // shorter texts are scanned: hashing costs about as much
)

// scan sets in found the literals of m that the text parts joined by
// spaces holds, and returns the state reached, as sc.scanArgs(m, parts,
// found) does, from the memo when that text is in it.
func (t *textMemo) scan(m *acMatcher, found []uint64, sc *scratch, parts ...string) int32 {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	if n < memoMin {
		return sc.scanArgs(m, parts, found)
	}
	if t.m != m {
		if t.slots == nil {
			t.slots, t.seed = make([]memoSlot, memoSlots), maphash.MakeSeed()
		}
		for i := range t.slots {
			t.slots[i].text = t.slots[i].text[:0]
		}
		t.m = m
	}
	var h uint64
	if len(parts) == 1 {
		h = maphash.String(t.seed, parts[0])
	} else {
		var mh maphash.Hash
		mh.SetSeed(t.seed)
		for i, p := range parts {
			if i > 0 {
				mh.WriteByte(' ')
			}
			mh.WriteString(p)
		}
		h = mh.Sum64()
	}
	e := &t.slots[h&(memoSlots-1)]
	if e.holds(parts) {
		for _, id := range e.ids[:e.n] {
			found[id>>6] |= 1 << (id & 63)
		}
		return e.st
	}
	t.tmp = append(t.tmp[:0], make([]uint64, m.words())...)
	st := sc.scanArgs(m, parts, t.tmp)
	e.text, e.n, e.st = e.text[:0], 0, st
	for w, bits := range t.tmp {
		found[w] |= bits
		for ; bits != 0 && e.n >= 0; bits &= bits - 1 {
			if e.n == memoIDs {
				e.n = -1
				break
			}
			e.ids[e.n] = int32(w<<6 | mathbits.TrailingZeros64(bits))
			e.n++
		}
	}
	if e.n < 0 {
		e.n = 0
		return st
	}
	for i, p := range parts {
		if i > 0 {
			e.text = append(e.text, ' ')
		}
		e.text = append(e.text, p...)
	}
	return st
}

// holds reports whether the slot holds the text parts joined by spaces.
func (e *memoSlot) holds(parts []string) bool {
	t := e.text
	if len(t) == 0 {
		return false
	}
	for i, p := range parts {
		if i > 0 {
			if len(t) == 0 || t[0] != ' ' {
				return false
			}
			t = t[1:]
		}
		if len(t) < len(p) || string(t[:len(p)]) != p {
			return false
		}
		t = t[len(p):]
	}
	return len(t) == 0
}
