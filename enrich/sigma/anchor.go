package sigma

import (
	"slices"
	"strings"
)

// An anchor is a fact a rule cannot match without: some field of the event
// has an exact (lower-case) value, or a path field has an exact base
// name. Rules are indexed by their anchors, so that an event is evaluated
// only against the rules whose anchors it has, plus the rules without one.
type anchor struct {
	field string // auditd field name, or the mapped field name
	base  bool   // key is the base name of the field's path
	key   string
}

// isAnchorField reports whether anchors are taken from field f: fields
// with a single, short value whose exact value or base name rules name
// often. Of the mapped categories only Image is used (doc.fieldValues).
func isAnchorField(f string) bool {
	switch f {
	case "Image", "a0", "comm", "exe", "SYSCALL", "key":
		return true
	}
	return false
}

// isPathField reports whether f has its base name taken as anchor key.
func isPathField(f string) bool { return f == "Image" || f == "exe" }

// anchors returns a set of anchors at least one of which the event has
// whenever r matches, or nil when the rule has no such set.
func (r *Rule) anchors() []anchor {
	return r.nodeAnchors(r.cond)
}

func (r *Rule) nodeAnchors(n *node) []anchor {
	switch n.kind {
	case nodeSel:
		return r.sels[n.sel].anchors()
	case nodeAnd, nodeAllOf:
		var best []anchor
		each := func(as []anchor) {
			if as != nil && (best == nil || len(as) < len(best)) {
				best = as
			}
		}
		for _, k := range n.kids {
			each(r.nodeAnchors(k))
		}
		for _, i := range n.sels {
			each(r.sels[i].anchors())
		}
		return best
	case nodeOr, nodeOneOf:
		var all []anchor
		for _, k := range n.kids {
			as := r.nodeAnchors(k)
			if as == nil {
				return nil
			}
			all = append(all, as...)
		}
		for _, i := range n.sels {
			as := r.sels[i].anchors()
			if as == nil {
				return nil
			}
			all = append(all, as...)
		}
		return all
	}
	return nil // not: no anchor
}

// anchors of a selection: one per map (any map may match).
func (sel *selection) anchors() []anchor {
	if sel.kw != nil || len(sel.maps) == 0 {
		return nil
	}
	var out []anchor
	for i := range sel.maps {
		as := sel.maps[i].anchors()
		if as == nil {
			return nil
		}
		out = append(out, as...)
	}
	return out
}

// anchors of a map: those of its first anchorable condition.
func (m *fieldMap) anchors() []anchor {
	for i := range m.conds {
		if as := m.conds[i].anchors(); as != nil {
			return as
		}
	}
	return nil
}

// anchors of a condition whose every value gives an exact key.
func (c *fieldCond) anchors() []anchor {
	if !isAnchorField(c.name) || c.neq || c.all || c.null || c.exists != 0 || len(c.vals) == 0 {
		return nil
	}
	base := isPathField(c.name)
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
		out = append(out, anchor{field: c.name, base: base, key: key})
	}
	return out
}

// index holds the rules of one kind by anchor.
type index struct {
	rules    []*Rule
	byAnchor map[anchor][]int // rule positions, ascending
	free     []int            // positions of rules without anchors
}

func newIndex(rules []*Rule) *index {
	x := &index{rules: rules, byAnchor: map[anchor][]int{}}
	for i, r := range rules {
		as := r.anchors()
		if as == nil {
			x.free = append(x.free, i)
			continue
		}
		for _, a := range as {
			if l := x.byAnchor[a]; len(l) == 0 || l[len(l)-1] != i {
				x.byAnchor[a] = append(l, i)
			}
		}
	}
	return x
}

// candidates returns the positions of the rules an event may match, in
// ascending order without repeats: the rules without anchors and those
// with an anchor among the (field, lower-cased value) pairs values
// yields. The slice is a.cand, valid until the next call.
func (x *index) candidates(a *auditCtx, values func(yield func(field, v string))) []int {
	if len(x.byAnchor) == 0 {
		return x.free
	}
	a.cand = append(a.cand[:0], x.free...)
	values(func(f, v string) {
		base := isPathField(f)
		if base {
			v = v[strings.LastIndexByte(v, '/')+1:]
		}
		if l, ok := x.byAnchor[anchor{field: f, base: base, key: v}]; ok {
			a.cand = append(a.cand, l...)
		}
	})
	if len(a.cand) > len(x.free) {
		slices.Sort(a.cand)
		a.cand = slices.Compact(a.cand)
	}
	return a.cand
}
