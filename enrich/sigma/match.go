package sigma

import (
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// test reports whether the field text v (low its lower-case form, or ""
// when not computed yet; ok whether the field is present) satisfies c.
func (c *fieldCond) test(v, low string, ok bool) bool {
	switch {
	case c.exists != 0:
		return ok == (c.exists > 0)
	case c.null:
		return !ok || audit.IsSentinel(v)
	case !ok:
		return false
	}
	if c.lower && low == "" {
		low = strings.ToLower(v)
	}
	return matchValues(c.vals, c.all, v, low) != c.neq
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
		return sel.kw.match(func(yield func(string) bool) {
			for f := range numFields {
				if v, _, ok := d.get(f); ok && !yield(v) {
					return
				}
			}
		})
	}
	for _, m := range sel.maps {
		if allConds(m, func(c *fieldCond) bool { return c.test(d.get(c.fid)) }) {
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

// auditCtx is an event seen by service: auditd rules.
type auditCtx struct {
	ev      *audit.Event
	s       *audit.Summary
	cmd     string // the command line, built on first use
	cmdDone bool
}

// matchRecords reports whether selection sel holds for the event: one
// record satisfies one of its maps, or its keywords are found among the
// field values of all records and the command line.
func (sel *selection) matchRecords(a *auditCtx) bool {
	if sel.kw != nil {
		return sel.kw.match(a.values)
	}
	for _, m := range sel.maps {
		for _, r := range a.ev.Records {
			if r != nil && allConds(m, func(c *fieldCond) bool {
				v, ok := recordField(r, c)
				return c.test(v, "", ok)
			}) {
				return true
			}
		}
	}
	return false
}

// values yields every field value of every record, then the command line
// (the EXECVE arguments joined by spaces) when the event has one.
func (a *auditCtx) values(yield func(string) bool) {
	for _, r := range a.ev.Records {
		if r == nil {
			continue
		}
		for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
			for i := range fs {
				if !yield(fs[i].Value) {
					return
				}
			}
		}
	}
	if !a.cmdDone {
		a.cmdDone = true
		if len(a.s.Args) > 1 {
			a.cmd = strings.Join(a.s.Args, " ")
		}
	}
	if a.cmd != "" {
		yield(a.cmd)
	}
}

// match reports whether any keyword (every keyword, with all) is found in
// one of the texts each yields.
func (kw *keywords) match(each func(yield func(string) bool)) bool {
	var found uint64 // keywords found so far (at most 64 with all)
	want := ^uint64(0) >> (64 - min(len(kw.vals), 64))
	done := false
	each(func(v string) bool {
		low := ""
		for i := range kw.vals {
			bit := uint64(1) << (i & 63)
			if kw.all && found&bit != 0 {
				continue
			}
			if kw.vals[i].needsLower() && low == "" {
				low = strings.ToLower(v)
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
