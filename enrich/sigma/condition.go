package sigma

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// node is a compiled condition. Selections are numbered in the order of
// the rule's detection map; a rule has at most maxSelections of them, so
// a condition is evaluated with two bit sets (see evalState).
type node struct {
	kind nodeKind
	sel  int     // nodeSel
	sels []int   // nodeOneOf, nodeAllOf
	kids []*node // nodeAnd, nodeOr, nodeNot (one kid)
}

type nodeKind uint8

const (
	nodeSel nodeKind = iota
	nodeAnd
	nodeOr
	nodeNot
	nodeOneOf
	nodeAllOf
)

// maxSelections bounds the search identifiers of one rule.
const maxSelections = 64

// maxCondDepth bounds the nesting of a condition (parentheses and not).
const maxCondDepth = 64

// evalState remembers which selections of a rule were evaluated for the
// current document, and their results.
type evalState struct {
	known, val uint64
}

// eval evaluates n, evaluating selections through sel at most once each.
func (n *node) eval(st *evalState, sel func(i int) bool) bool {
	switch n.kind {
	case nodeSel:
		return st.get(n.sel, sel)
	case nodeAnd:
		for _, k := range n.kids {
			if !k.eval(st, sel) {
				return false
			}
		}
		return true
	case nodeOr:
		for _, k := range n.kids {
			if k.eval(st, sel) {
				return true
			}
		}
		return false
	case nodeNot:
		return !n.kids[0].eval(st, sel)
	case nodeOneOf:
		for _, i := range n.sels {
			if st.get(i, sel) {
				return true
			}
		}
		return false
	default: // nodeAllOf
		for _, i := range n.sels {
			if !st.get(i, sel) {
				return false
			}
		}
		return true
	}
}

func (st *evalState) get(i int, sel func(int) bool) bool {
	bit := uint64(1) << i
	if st.known&bit == 0 {
		st.known |= bit
		if sel(i) {
			st.val |= bit
		}
	}
	return st.val&bit != 0
}

// condToken is a token of a condition.
type condToken struct {
	text string
	pos  int // byte offset in the condition
}

// tokenize splits a condition into words and parentheses.
func tokenize(s string) ([]condToken, error) {
	var toks []condToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, condToken{s[i : i+1], i})
			i++
		case c == '|':
			return nil, unsupported("aggregation (| ...) in condition at offset %d", i)
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n()|", rune(s[j])) {
				j++
			}
			toks = append(toks, condToken{s[i:j], i})
			i = j
		}
	}
	return toks, nil
}

// condParser parses one condition over the rule's selection names.
//
// Grammar (least to most binding, as the specification orders them):
//
//	expr    = and { "or" and }
//	and     = not { "and" not }
//	not     = "not" not | primary
//	primary = "(" expr ")" | ("1" | "all") "of" (pattern | "them") | name
type condParser struct {
	toks  []condToken
	i     int
	names []string // selection names in order
}

// parseCondition compiles cond over the selections names.
func parseCondition(cond string, names []string) (*node, error) {
	toks, err := tokenize(cond)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("empty condition")
	}
	p := &condParser{toks: toks, names: names}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, p.errorf("unexpected %q", p.toks[p.i].text)
	}
	return n, nil
}

func (p *condParser) errorf(format string, args ...any) error {
	pos := -1
	if p.i < len(p.toks) {
		pos = p.toks[p.i].pos
	}
	msg := fmt.Sprintf(format, args...)
	if pos < 0 {
		return fmt.Errorf("condition: %s at the end", msg)
	}
	return fmt.Errorf("condition: %s at offset %d", msg, pos)
}

func (p *condParser) peek() string {
	if p.i < len(p.toks) {
		return strings.ToLower(p.toks[p.i].text)
	}
	return ""
}

func (p *condParser) expr(depth int) (*node, error) {
	return p.binary(depth, "or", nodeOr, p.and)
}

func (p *condParser) and(depth int) (*node, error) {
	return p.binary(depth, "and", nodeAnd, p.not)
}

// binary parses sub { word sub } into a node of kind k.
func (p *condParser) binary(depth int, word string, k nodeKind, sub func(int) (*node, error)) (*node, error) {
	first, err := sub(depth)
	if err != nil {
		return nil, err
	}
	n := first
	for p.peek() == word {
		p.i++
		next, err := sub(depth)
		if err != nil {
			return nil, err
		}
		if n == first {
			n = &node{kind: k, kids: []*node{first}}
		}
		n.kids = append(n.kids, next)
	}
	return n, nil
}

func (p *condParser) not(depth int) (*node, error) {
	if depth > maxCondDepth {
		return nil, p.errorf("nested deeper than %d", maxCondDepth)
	}
	if p.peek() == "not" {
		p.i++
		k, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return &node{kind: nodeNot, kids: []*node{k}}, nil
	}
	return p.primary(depth)
}

func (p *condParser) primary(depth int) (*node, error) {
	w := p.peek()
	switch w {
	case "":
		return nil, p.errorf("expression expected")
	case "(":
		p.i++
		n, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, p.errorf("missing )")
		}
		p.i++
		return n, nil
	case ")", "and", "or", "of", "them":
		return nil, p.errorf("unexpected %q", p.toks[p.i].text)
	}
	if p.i+1 < len(p.toks) && strings.ToLower(p.toks[p.i+1].text) == "of" {
		kind := nodeOneOf
		switch w {
		case "1", "any":
			// "any of" is an old synonym of "1 of".
		case "all":
			kind = nodeAllOf
		default:
			return nil, unsupported("%q of (only 1 of and all of)", p.toks[p.i].text)
		}
		p.i += 2
		target := p.peek()
		if target == "" || target == "(" || target == ")" {
			return nil, p.errorf("pattern or them expected after of")
		}
		sels, err := p.match(p.toks[p.i].text)
		if err != nil {
			return nil, err
		}
		p.i++
		return &node{kind: kind, sels: sels}, nil
	}
	name := p.toks[p.i].text
	for i, s := range p.names {
		if s == name {
			p.i++
			return &node{kind: nodeSel, sel: i}, nil
		}
	}
	return nil, p.errorf("no search identifier %q", name)
}

// match returns the selections a pattern names; "them" names all but
// those whose name starts with an underscore.
func (p *condParser) match(pat string) ([]int, error) {
	var out []int
	for i, s := range p.names {
		var ok bool
		if strings.ToLower(pat) == "them" {
			ok = !strings.HasPrefix(s, "_")
		} else {
			var err error
			if ok, err = path.Match(pat, s); err != nil {
				return nil, p.errorf("bad pattern %q", pat)
			}
		}
		if ok {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, p.errorf("%q names no search identifier", pat)
	}
	return out, nil
}
