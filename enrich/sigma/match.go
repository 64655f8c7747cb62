package sigma

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// test reports whether the field text v (ok: the field is present)
// satisfies c. low is v in lower case, or "" for test to compute it in
// sc when a value needs it (see needsLower). hex says that v is a field
// of a record other than EXECVE, whose a0 to a3 numeric comparisons read
// as hexadecimal (see fieldMap.hexArgs).
func (c *fieldCond) test(v, low string, ok, hex bool, sc *scratch) bool {
	switch {
	case c.exists != 0:
		return ok == (c.exists > 0)
	case c.null:
		return !ok || audit.IsSentinel(v)
	case !ok:
		return false
	}
	vals := c.vals
	if hex && c.hexVals != nil {
		vals = c.hexVals
	}
	return matchValues(vals, c.all, v, low, sc) != c.neq
}

// scratch is the memory of one evaluation: lower-cased copies and joined
// texts of the current event, appended to arena. Strings into the arena
// stay valid until the scratch is reset (appending may move the arena,
// but never changes bytes already written, and the old array lives as
// long as a string points into it); nothing keeps them past the event.
type scratch struct {
	arena []byte
	memo  textMemo // the literals of texts scanned in earlier events
}

// lower returns s in lower case: s itself when it has no upper-case
// letter, else a copy in the arena (or a new string for non-ASCII text).
func (sc *scratch) lower(s string) string {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
		upper = upper || 'A' <= c && c <= 'Z'
	}
	if !upper {
		return s
	}
	start := len(sc.arena)
	sc.arena = append(sc.arena, s...)
	lowerASCII(sc.arena[start:])
	return sc.view(start)
}

// view returns the arena from start as a string.
func (sc *scratch) view(start int) string {
	b := sc.arena[start:]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// join returns parts joined by spaces, in the arena.
func (sc *scratch) join(parts []string) string {
	start := len(sc.arena)
	for i, p := range parts {
		if i > 0 {
			sc.arena = append(sc.arena, ' ')
		}
		sc.arena = append(sc.arena, p...)
	}
	return sc.view(start)
}

// isASCII reports whether s has no byte of 0x80 or above, testing eight
// bytes at a time.
func isASCII(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// matchValues reports whether any value matches v, or, with all, whether
// every value of the rule has a variant (value.more) that matches. low is
// v in lower case, or "" to be computed in sc when a value needs it: only
// then, so that a value matched earlier spares it.
func matchValues(vals []value, all bool, v, low string, sc *scratch) bool {
	matched := false // with all: a variant of the current value matched
	for i := range vals {
		if matched {
			if vals[i-1].more {
				continue
			}
			matched = false
		}
		if low == "" && v != "" && vals[i].needsLower() {
			low = sc.lower(v)
		}
		if vals[i].match(v, low) {
			if !all {
				return true
			}
			matched = true
		} else if all && !vals[i].more {
			return false
		}
	}
	return all
}

// matchDoc reports whether selection sel holds for document d.
func (sel *selection) matchDoc(d *doc) bool {
	if sel.kw != nil {
		return sel.kw.match(nil, func(yield func(v, low string) bool) {
			for f := range numFields {
				if v, low, ok := d.get(f, true); ok && !yield(v, low) {
					return
				}
			}
		})
	}
	for i := range sel.maps {
		if allConds(sel.maps[i].conds, func(c *fieldCond) bool {
			v, low, ok := d.get(c.fid, c.lower)
			return c.test(v, low, ok, false, d.sc)
		}) {
			return true
		}
	}
	return false
}

func allConds(m []fieldCond, test func(c *fieldCond) bool) bool {
	for i := range m {
		if !test(&m[i]) {
			return false
		}
	}
	return true
}

// auditCtx is an event seen by service: auditd rules, and the memory of
// its evaluation. Its buffers come from a pool and are reused event
// after event.
type auditCtx struct {
	ev      *audit.Event
	s       *audit.Summary
	types   uint64   // typeBit of each of the event's record types
	execves int      // the number of EXECVE records
	cand    []int    // candidate rules (index.candidates)
	bits    []uint64 // candidate rules as a set (index.candidates)
	found   []uint64 // literals found (index.candidates)
	keep    []uint64 // rules kept by the literals (index.candidates)
	doc     doc      // the process document (mapped categories)
	// With one automaton for service: auditd and process_creation
	// (shareLiterals), the texts both read are scanned once into shared,
	// which index.candidates adds to the facts found for either kind;
	// exeShared and cmdShared say that the Image and the CommandLine
	// are among them.
	shared               []uint64
	exeShared, cmdShared bool
	later                []laterScan // auditCtx.walk: values to scan once the anchors are known
	scratch
}

var auditCtxPool = sync.Pool{New: func() any { return new(auditCtx) }}

// matchRecords reports whether selection sel holds for recs: one record
// satisfies one of its maps, or its keywords are found among the values
// of one record (see recordValues).
func (sel *selection) matchRecords(a *auditCtx, recs []*audit.Record) bool {
	if sel.kw != nil {
		for _, r := range recs {
			if r != nil && sel.kw.match(&a.scratch, a.recordValues(r)) {
				return true
			}
		}
		return false
	}
	for i := range sel.maps {
		m := &sel.maps[i]
		if m.types != nil && m.mask&a.types == 0 {
			continue
		}
		for _, r := range recs {
			if r == nil || m.types != nil && !slices.Contains(m.types, r.TypeNum) {
				continue
			}
			if allConds(m.conds, func(c *fieldCond) bool {
				v, ok := recordField(r, c, a.s.Args)
				return c.test(v, "", ok, r.TypeNum != 1309, &a.scratch)
			}) {
				return true
			}
		}
	}
	return false
}

// recordValues yields every field value of r (raw and ENRICHED), then,
// for an EXECVE record, the command line (the arguments joined by
// spaces) when there are two arguments or more.
func (a *auditCtx) recordValues(r *audit.Record) func(yield func(v, low string) bool) {
	return func(yield func(v, low string) bool) {
		for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
			for i := range fs {
				if !yield(fs[i].Value, "") {
					return
				}
			}
		}
		if r.TypeNum == 1309 && len(a.s.Args) > 1 {
			yield(a.join(a.s.Args), "")
		}
	}
}

// match reports whether any keyword (every keyword, with all: one of its
// variants, see value.more) is found in one of the texts each yields
// (with their lower-case forms, or "" for l to compute them).
func (kw *keywords) match(l *scratch, each func(yield func(v, low string) bool)) bool {
	var found uint64 // keywords found so far (at most 64 with all)
	want := ^uint64(0) >> (64 - min(numValues(kw.vals), 64))
	done := false
	each(func(v, low string) bool {
		lowered := low != "" || l == nil
		k := 0 // the keyword of kw.vals[i]
		for i := range kw.vals {
			bit := uint64(1) << (k & 63)
			if !kw.vals[i].more {
				k++
			}
			if kw.all && found&bit != 0 {
				continue
			}
			if kw.vals[i].needsLower() && !lowered {
				low, lowered = l.lower(v), true
			}
			if kw.vals[i].match(v, low) {
				found |= bit
				if !kw.all || found == want {
					done = true
					return false
				}
			}
		}
		return true
	})
	return done
}

// evalRecords reports whether rule r matches the event. The selections
// of a rule without keywords may hold on different records; a rule with
// keywords (perRecord) matches when one record, of one of its recTypes,
// satisfies the whole condition: the specification searches keywords in
// one log message, and auditd writes each record as its own line.
func (r *Rule) evalRecords(a *auditCtx) bool {
	if !r.perRecord {
		var st evalState
		return r.cond.eval(&st, func(i int) bool { return r.sels[i].matchRecords(a, a.ev.Records) })
	}
	for k, rec := range a.ev.Records {
		if rec == nil || r.recTypes != nil && !slices.Contains(r.recTypes, rec.TypeNum) {
			continue
		}
		one := a.ev.Records[k : k+1]
		var st evalState
		if r.cond.eval(&st, func(i int) bool { return r.sels[i].matchRecords(a, one) }) {
			return true
		}
	}
	return false
}

func (r *Rule) evalDoc(d *doc) bool {
	var st evalState
	return r.cond.eval(&st, func(i int) bool { return r.sels[i].matchDoc(d) })
}
