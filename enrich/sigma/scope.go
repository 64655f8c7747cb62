package sigma

import (
	"slices"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// What a service: auditd rule reads of an event. A field map reads the
// fields it names (raw or ENRICHED, see recordField); a keyword search
// reads every value of one record, and of an EXECVE record the command
// line too (see Rule.perRecord). The per-event walk (auditCtx.walk) looks
// only at those values, in one pass that also collects the anchors.

// recordTypeNeeds finds the record types one of which the record a
// per-record rule matches on has (nil: any type).
var recordTypeNeeds = needs[uint16]{
	cond: func(*fieldCond) []uint16 { return nil },
	fmap: func(m *fieldMap) []uint16 { return m.types },
	rank: func(ts []uint16) int { return -len(ts) },
}

// nameSet is a set of field names with a membership test that costs a
// few byte comparisons for the names an event carries: most names are
// ruled out by their first byte and length.
type nameSet struct {
	lens    [256]uint32 // by first byte: bit min(len, 31) of the names
	byFirst [256][]string
}

func (s *nameSet) add(n string) {
	if n != "" && !slices.Contains(s.byFirst[n[0]], n) {
		s.byFirst[n[0]] = append(s.byFirst[n[0]], n)
		s.lens[n[0]] |= 1 << min(len(n), 31)
	}
}

func (s *nameSet) has(n string) bool {
	if n == "" || s.lens[n[0]]&(1<<min(len(n), 31)) == 0 {
		return false
	}
	for _, x := range s.byFirst[n[0]] {
		if x == n {
			return true
		}
	}
	return false
}

// scope is what the rules of an index read.
type scope struct {
	docFields uint32   // mapped categories: bit f: a rule may read field f
	names     nameSet  // service: auditd: fields named by field maps
	typeField bool     // some condition compares "type" as a field
	kwAll     bool     // some keyword search may read any record
	kwTypes   []uint16 // else: the types of the records keyword searches read
	kwMask    uint64   // typeBit of kwTypes
}

// scopeOf collects what rules read.
func scopeOf(rules []*Rule) scope {
	var sc scope
	for _, r := range rules {
		if r.kind != kindAuditd {
			// A keyword search reads every field of the document.
			for i := range r.sels {
				if r.sels[i].kw != nil {
					sc.docFields = 1<<numFields - 1
				}
				for j := range r.sels[i].maps {
					for _, c := range r.sels[i].maps[j].conds {
						sc.docFields |= 1 << c.fid
					}
				}
			}
			continue
		}
		for i := range r.sels {
			for j := range r.sels[i].maps {
				for _, c := range r.sels[i].maps[j].conds {
					sc.names.add(c.name)
					sc.typeField = sc.typeField || c.name == "type"
				}
			}
		}
		if r.perRecord {
			if r.recTypes == nil {
				sc.kwAll = true
			}
			for _, t := range r.recTypes {
				if !slices.Contains(sc.kwTypes, t) {
					sc.kwTypes = append(sc.kwTypes, t)
					sc.kwMask |= typeBit(t)
				}
			}
		}
	}
	return sc
}

// whole reports whether keyword searches may read every value of a
// record of type t.
func (sc *scope) whole(t uint16) bool {
	return sc.kwAll || sc.kwMask&typeBit(t) != 0 && slices.Contains(sc.kwTypes, t)
}

// anchorRecord reports whether records of type t may carry anchor
// fields: the kernel's PATH, CWD, SOCKADDR and PROCTITLE records carry
// none of them, and are passed over.
func anchorRecord(t uint16) bool {
	switch t {
	case 1302, 1307, 1306, audit.TypeProctitle:
		return false
	}
	return true
}

// walk implements walker for service: auditd rules: every value of the
// records keyword searches may read (with the command line for an
// EXECVE record), the named fields of the others; anchors from the
// anchor fields (of an EXECVE record only a0).
func (a *auditCtx) walk(x *index, _ *auditCtx, found []uint64) {
	sc, m := &x.scope, x.lits
	anchors := x.anchored
	cmdline := false
	for _, r := range a.ev.Records {
		if r == nil {
			continue
		}
		if found != nil && x.typeFacts != nil {
			x.setType(r.TypeNum, found)
		}
		whole := found != nil && sc.whole(r.TypeNum)
		if found != nil && sc.typeField {
			m.scanText(0, r.Type, found, &a.scratch)
		}
		// The command line of the event's one EXECVE record holds every
		// argument when their numbers agree: its scan covers theirs.
		args := false
		if whole && r.TypeNum == 1309 && !cmdline && len(a.s.Args) > 1 {
			cmdline = true
			dst := found
			if len(a.shared) > 0 {
				dst, a.cmdShared = a.shared, true
			}
			a.scanLine(m, a.s.Args, dst)
			args = a.execves == 1 && argFields(r) == len(a.s.Args)
		}
		anch := anchors && anchorRecord(r.TypeNum)
		for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
			for i := range fs {
				f := &fs[i]
				if !whole && !sc.names.has(f.Name) {
					continue
				}
				if found != nil && !(args && isArgName(f.Name)) {
					dst := found
					if len(a.shared) > 0 && !a.exeShared && f.Name == "exe" && f.Value == a.s.Exe {
						dst, a.exeShared = a.shared, true
					}
					a.scanValue(m, dst, f.Value)
				}
				if anch {
					if af := anchorField(f.Name); af >= 0 && (r.TypeNum != 1309 || af == 0) && x.byAnchor[af] != nil {
						a.anchor(x, af, f.Value)
					}
				}
			}
		}
	}
}

// isArgName reports whether an EXECVE field called n is an argument
// (a0, a1, ...).
func isArgName(n string) bool {
	if len(n) < 2 || n[0] != 'a' {
		return false
	}
	for i := 1; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// argFields counts the argument fields of an EXECVE record, or returns
// -1 when the record has chunks of long arguments (a1[0]), which the
// summary joins (audit.Summary.Args).
func argFields(r *audit.Record) int {
	n := 0
	for i := range r.Fields {
		name := r.Fields[i].Name
		if strings.IndexByte(name, '[') >= 0 {
			return -1
		}
		if isArgName(name) {
			n++
		}
	}
	return n
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
