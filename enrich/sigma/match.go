package sigma

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// test reports whether the field text v (low its lower-case form when
// c.lower; ok whether the field is present) satisfies c.
func (c *fieldCond) test(v, low string, ok bool) bool {
	switch {
	case c.exists != 0:
		return ok == (c.exists > 0)
	case c.null:
		return !ok || audit.IsSentinel(v)
	case !ok:
		return false
	}
	return matchValues(c.vals, c.all, v, low) != c.neq
}

// scratch is the memory of one evaluation: lower-cased copies and joined
// texts of the current event, appended to arena. Strings into the arena
// stay valid until the scratch is reset (appending may move the arena,
// but never changes bytes already written, and the old array lives as
// long as a string points into it); nothing keeps them past the event.
type scratch struct{ arena []byte }

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

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// matchValues reports whether any (or, with all, every) value matches.
func matchValues(vals []value, all bool, v, low string) bool {
	for i := range vals {
		if vals[i].match(v, low) != all {
			return !all
		}
	}
	return all
}

// matchDoc reports whether selection sel holds for document d.
func (sel *selection) matchDoc(d *doc) bool {
	if sel.kw != nil {
		return sel.kw.match(nil, func(yield func(v, low string) bool) {
			for f := range numFields {
				if v, low, ok := d.get(f); ok && !yield(v, low) {
					return
				}
			}
		})
	}
	for i := range sel.maps {
		if allConds(sel.maps[i].conds, func(c *fieldCond) bool { return c.test(d.get(c.fid)) }) {
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

// auditCtx is an event seen by service: auditd rules. Its buffers come
// from a pool and are reused event after event.
type auditCtx struct {
	ev     *audit.Event
	s      *audit.Summary
	types  uint64   // typeBit of each of the event's record types
	text   string   // every value, lower-cased, built on first use
	joined bool     // text is built
	cand   []int    // candidate rules (index.candidates)
	found  []uint64 // literals found (index.candidates)
	scratch
}

var auditCtxPool = sync.Pool{New: func() any { return new(auditCtx) }}

// matchRecords reports whether selection sel holds for the event: one
// record satisfies one of its maps, or its keywords are found among the
// field values of all records and the command line.
func (sel *selection) matchRecords(a *auditCtx) bool {
	if sel.kw != nil {
		return sel.kw.matchText(a)
	}
	for i := range sel.maps {
		m := &sel.maps[i]
		if m.types != nil && m.mask&a.types == 0 {
			continue
		}
		for _, r := range a.ev.Records {
			if r == nil || m.types != nil && !slices.Contains(m.types, r.TypeNum) {
				continue
			}
			if allConds(m.conds, func(c *fieldCond) bool {
				v, ok := recordField(r, c)
				low := ""
				if ok && c.lower {
					low = a.lower(v)
				}
				return c.test(v, low, ok)
			}) {
				return true
			}
		}
	}
	return false
}

// fieldValues yields the lower-cased values of the anchor fields in
// every record (for the anchor index; each string is valid during the
// yield only). The kernel's PATH, CWD, SOCKADDR and PROCTITLE records
// carry none of them and are passed over; of an EXECVE record only a0 is
// read.
func (a *auditCtx) fieldValues(yield func(field, v string)) {
	for _, r := range a.ev.Records {
		if r == nil {
			continue
		}
		switch r.TypeNum {
		case 1302, 1307, 1306, audit.TypeProctitle: // PATH, CWD, SOCKADDR
			continue
		case 1309: // EXECVE
			if v, ok := r.Get("a0"); ok {
				yield("a0", a.lower(v))
			}
			continue
		}
		for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
			for i := range fs {
				if isAnchorField(fs[i].Name) {
					yield(fs[i].Name, a.lower(fs[i].Value))
				}
			}
		}
	}
}

// scanLiterals scans the text of every value a rule may read (record
// types, field values, the command line) for the literals of m.
func (a *auditCtx) scanLiterals(m *acMatcher, found []uint64) {
	for _, r := range a.ev.Records {
		if r == nil {
			continue
		}
		m.scanText(0, r.Type, found, &a.scratch)
		for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
			for i := range fs {
				m.scanText(0, fs[i].Value, found, &a.scratch)
			}
		}
	}
	if args := a.s.Args; len(args) > 1 {
		st := int32(0)
		for i, arg := range args {
			if i > 0 {
				st = m.scanText(st, " ", found, &a.scratch)
			}
			st = m.scanText(st, arg, found, &a.scratch)
		}
	}
}

// values yields every field value of every record, then the command line
// (the EXECVE arguments joined by spaces) when the event has one.
func (a *auditCtx) values(yield func(v, low string) bool) {
	for _, r := range a.ev.Records {
		if r == nil {
			continue
		}
		for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
			for i := range fs {
				if !yield(fs[i].Value, "") {
					return
				}
			}
		}
	}
	if len(a.s.Args) > 1 {
		yield(a.join(a.s.Args), "")
	}
}

// lowText returns what values yields, lower-cased and joined by NUL bytes
// (which no keyword holds), built once per event.
func (a *auditCtx) lowText() string {
	if !a.joined {
		a.joined = true
		start := len(a.arena)
		a.values(func(v, _ string) bool {
			if i := len(a.arena); isASCII(v) {
				a.arena = append(a.arena, v...)
				lowerASCII(a.arena[i:])
			} else {
				a.arena = append(a.arena, strings.ToLower(v)...)
			}
			a.arena = append(a.arena, 0)
			return true
		})
		a.text = a.view(start)
	}
	return a.text
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// matchText is match over the event's values. Keywords that are plain
// case-insensitive substrings (the usual ones) are searched in lowText
// at once; others are tested value by value.
func (kw *keywords) matchText(a *auditCtx) bool {
	if !kw.plain {
		return kw.match(&a.scratch, a.values)
	}
	text := a.lowText()
	for i := range kw.vals {
		if strings.Contains(text, kw.vals[i].s) != kw.all {
			return !kw.all
		}
	}
	return kw.all
}

// match reports whether any keyword (every keyword, with all) is found in
// one of the texts each yields (with their lower-case forms, or "" for l
// to compute them).
func (kw *keywords) match(l *scratch, each func(yield func(v, low string) bool)) bool {
	var found uint64 // keywords found so far (at most 64 with all)
	want := ^uint64(0) >> (64 - min(len(kw.vals), 64))
	done := false
	each(func(v, low string) bool {
		lowered := low != "" || l == nil
		for i := range kw.vals {
			bit := uint64(1) << (i & 63)
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

// eval reports whether rule r matches the event.
func (r *Rule) evalRecords(a *auditCtx) bool {
	var st evalState
	return r.cond.eval(&st, func(i int) bool { return r.sels[i].matchRecords(a) })
}

func (r *Rule) evalDoc(d *doc) bool {
	var st evalState
	return r.cond.eval(&st, func(i int) bool { return r.sels[i].matchDoc(d) })
}
