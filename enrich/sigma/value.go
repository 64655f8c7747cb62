package sigma

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// op is how a compiled value compares a field.
type op uint8

const (
	opEq       op = iota // whole value equal
	opPrefix             // value starts with s
	opSuffix             // value ends with s
	opContains           // value contains s
	opAny                // a lone * wildcard: any value
	opGlob               // wildcard pattern other than the above
	opRe                 // regular expression (on the original value)
	opCIDR               // IP address inside a prefix
	opLT                 // numeric comparisons
	opLTE
	opGT
	opGTE
)

// value is one compiled Sigma value. Strings are stored lower-cased
// unless cased is set, and compared with the field's lower-cased text.
type value struct {
	op     op
	s      string
	glob   []globTok
	cased  bool
	re     *regexp.Regexp
	reLits []string // literals one of which every match contains (prefilter)
	pfx    netip.Prefix
	num    float64
	// more is set on every variant but the last of one value of the rule
	// (base64offset and windash expand a value into several): with all,
	// every value needs one of its variants to match.
	more bool
	hex  bool // a numeric comparison reads the field as hexadecimal (see fieldCond.hexVals)
}

// numValues returns how many values of the rule vals came from (see
// value.more).
func numValues(vals []value) int {
	n := 0
	for i := range vals {
		if !vals[i].more {
			n++
		}
	}
	return n
}

// match reports whether the field text s matches v. low is s in lower
// case, or "" when the caller did not compute it (then s is not empty and
// v does not need it: see needsLower).
func (v *value) match(s, low string) bool {
	t := low
	if v.cased {
		t = s
	} else if low == "" && s != "" {
		// Not lowered: equality, prefix and suffix fold as they compare,
		// while the bytes they compare are ASCII; a non-ASCII letter may
		// lower-case to another length (the Kelvin sign to k), so then
		// the text is lowered.
		eq, ok := false, false
		switch v.op {
		case opEq:
			if len(s) == len(v.s) {
				eq, ok = foldHas(s, v.s, false)
			} else {
				ok = isASCII(s) // keeps its length lower-cased: not equal
			}
		case opPrefix:
			eq, ok = foldHas(s, v.s, false)
		case opSuffix:
			eq, ok = foldHas(s, v.s, true)
		}
		if ok {
			return eq
		}
		if v.op == opEq || v.op == opPrefix || v.op == opSuffix {
			t = strings.ToLower(s)
		}
	}
	switch v.op {
	case opEq:
		return t == v.s
	case opPrefix:
		return strings.HasPrefix(t, v.s)
	case opSuffix:
		return strings.HasSuffix(t, v.s)
	case opContains:
		return strings.Contains(t, v.s)
	case opAny:
		return true
	case opGlob:
		return globMatch(v.glob, t)
	case opRe:
		return v.re.MatchString(s)
	case opCIDR:
		a, err := netip.ParseAddr(s)
		return err == nil && v.pfx.Contains(a.Unmap())
	default:
		var n float64
		var err error
		if v.hex {
			var u uint64
			u, err = strconv.ParseUint(s, 16, 64)
			n = float64(u)
		} else {
			n, err = strconv.ParseFloat(s, 64)
		}
		if err != nil {
			return false
		}
		switch v.op {
		case opLT:
			return n < v.num
		case opLTE:
			return n <= v.num
		case opGT:
			return n > v.num
		default:
			return n >= v.num
		}
	}
}

// needsLower reports whether match needs the lower-cased text.
func (v *value) needsLower() bool {
	return !v.cased && (v.op == opContains || v.op == opGlob)
}

// foldHas reports whether s lower-cased starts (fromEnd: ends) with the
// lower-case text low, comparing the bytes of s from that end with ASCII
// letters folded: ok is false when a non-ASCII byte of s is reached before
// the answer is known, since its lower-case form may have another length.
func foldHas(s, low string, fromEnd bool) (has, ok bool) {
	for k := range len(low) {
		i, j := k, k
		if fromEnd {
			i, j = len(s)-1-k, len(low)-1-k
		}
		if i < 0 || i >= len(s) {
			return false, true // s is shorter, and ASCII
		}
		if s[i] >= utf8.RuneSelf {
			return false, false
		}
		if foldASCII[s[i]] != low[j] {
			return false, true
		}
	}
	return true, true
}

// globTok is a piece of a wildcard pattern: literal text, or the wildcard
// '*' (any run of characters) or '?' (exactly one character).
type globTok struct {
	lit  string
	wild byte
}

// parseWildcards splits a Sigma string into literal runs and wildcards,
// applying the escapes of the specification: \* and \? are literal, \\
// before a wildcard is one backslash, any other backslash is itself.
func parseWildcards(s string) []globTok {
	var toks []globTok
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, globTok{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?'):
			lit.WriteByte(s[i+1])
			i++
		case c == '\\' && i+1 < len(s) && s[i+1] == '\\':
			lit.WriteByte('\\')
			i++
		case c == '*' || c == '?':
			flush()
			toks = append(toks, globTok{wild: c})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return toks
}

// literal returns the text of toks when it holds no wildcard.
func literal(toks []globTok) (string, bool) {
	var b strings.Builder
	for _, t := range toks {
		if t.wild != 0 {
			return "", false
		}
		b.WriteString(t.lit)
	}
	return b.String(), true
}

// compileGlob turns a wildcard pattern into the cheapest equivalent value.
func compileGlob(toks []globTok, cased bool) value {
	fold := func(s string) string {
		if cased {
			return s
		}
		return strings.ToLower(s)
	}
	// Merge runs of '*' so that "**" counts as one.
	var ts []globTok
	for _, t := range toks {
		if t.wild == '*' && len(ts) > 0 && ts[len(ts)-1].wild == '*' {
			continue
		}
		if t.wild == 0 {
			t.lit = fold(t.lit)
		}
		ts = append(ts, t)
	}
	star := func(i int) bool { return i >= 0 && i < len(ts) && ts[i].wild == '*' }
	v := value{cased: cased}
	switch {
	case len(ts) == 0:
		v.op = opEq
	case len(ts) == 1 && ts[0].wild == 0:
		v.op, v.s = opEq, ts[0].lit
	case len(ts) == 1 && star(0):
		v.op = opAny
	case len(ts) == 2 && star(0) && ts[1].wild == 0:
		v.op, v.s = opSuffix, ts[1].lit
	case len(ts) == 2 && ts[0].wild == 0 && star(1):
		v.op, v.s = opPrefix, ts[0].lit
	case len(ts) == 3 && star(0) && ts[1].wild == 0 && star(2):
		v.op, v.s = opContains, ts[1].lit
	default:
		v.op, v.glob = opGlob, ts
	}
	return v
}

// globMatch matches s against the pattern toks ('*' any run, '?' one
// character). It backtracks only to the latest '*', so it runs in
// O(len(s) * len(toks)).
func globMatch(toks []globTok, s string) bool {
	ti, si := 0, 0
	starT, starS := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			switch {
			case t.wild == '*':
				starT, starS = ti, si
				ti++
				continue
			case t.wild == '?':
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					ti++
					continue
				}
			case strings.HasPrefix(s[si:], t.lit):
				si += len(t.lit)
				ti++
				continue
			}
		} else if si == len(s) {
			return true
		}
		if starT < 0 || starS >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starS:])
		starS += n
		ti, si = starT+1, starS
	}
}

// modifiers is the parsed modifier chain of a field key.
type modifiers struct {
	chain  []string // transformations in order: base64, base64offset, windash
	wrap   string   // contains | startswith | endswith | ""
	all    bool
	cased  bool
	neq    bool
	exists bool
	re     bool
	reFlag string // i, m, s flags of re
	cidr   bool
	cmp    op // opLT..opGTE, or 0
}

// numericOps are the numeric comparison modifiers.
var numericOps = map[string]op{"lt": opLT, "lte": opLTE, "gt": opGT, "gte": opGTE}

// errUnsupported marks a rule feature this engine does not implement.
var errUnsupported = errors.New("unsupported")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUnsupported, fmt.Sprintf(format, args...))
}

// parseModifiers parses the modifiers after the field name.
func parseModifiers(mods []string) (modifiers, error) {
	var m modifiers
	for _, name := range mods {
		switch name {
		case "contains", "startswith", "endswith":
			if m.wrap != "" {
				return m, fmt.Errorf("modifiers %s and %s together", m.wrap, name)
			}
			m.wrap = name
		case "all":
			m.all = true
		case "cased":
			m.cased = true
		case "neq":
			m.neq = true
		case "exists":
			m.exists = true
		case "re":
			m.re = true
		case "i", "m", "s":
			if !m.re {
				return m, fmt.Errorf("modifier %s is a sub-modifier of re", name)
			}
			m.reFlag += name
		case "cidr":
			m.cidr = true
		case "lt", "lte", "gt", "gte":
			m.cmp = numericOps[name]
		case "base64", "base64offset", "windash":
			m.chain = append(m.chain, name)
		case "utf16", "utf16le", "utf16be", "wide", "expand", "fieldref",
			"minute", "hour", "day", "week", "month", "year":
			return m, unsupported("modifier %s", name)
		default:
			return m, fmt.Errorf("unknown modifier %q", name)
		}
	}
	special := 0
	for _, b := range []bool{m.re, m.cidr, m.cmp != 0, m.exists} {
		if b {
			special++
		}
	}
	if special > 1 || special == 1 && (m.wrap != "" || len(m.chain) > 0) {
		return m, errors.New("re, cidr, exists and lt/lte/gt/gte cannot be combined with each other or with string modifiers")
	}
	return m, nil
}

// compileValues compiles the scalar values of one field (or keyword list)
// under modifiers m. Each scalar may expand into several values
// (base64offset, windash), which stay together, marked by value.more.
func compileValues(m modifiers, raw []string) ([]value, error) {
	var out []value
	for _, r := range raw {
		switch {
		case m.re:
			flags := ""
			if m.reFlag != "" {
				flags = "(?" + m.reFlag + ")"
			}
			re, err := regexp.Compile(flags + r)
			if err != nil {
				return nil, fmt.Errorf("re %q: %v", r, err)
			}
			v := value{op: opRe, re: re}
			if tree, err := syntax.Parse(flags+r, syntax.Perl); err == nil {
				v.reLits = reLiterals(tree)
			}
			out = append(out, v)
		case m.cidr:
			p, err := netip.ParsePrefix(r)
			if err != nil {
				return nil, fmt.Errorf("cidr %q: %v", r, err)
			}
			out = append(out, value{op: opCIDR, pfx: p.Masked()})
		case m.cmp != 0:
			n, err := strconv.ParseFloat(r, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", r)
			}
			out = append(out, value{op: m.cmp, num: n})
		default:
			vs, err := stringValues(m, r)
			if err != nil {
				return nil, err
			}
			for i := range len(vs) - 1 {
				vs[i].more = true
			}
			out = append(out, vs...)
		}
	}
	return out, nil
}

// stringValues applies the transformations and the wrap modifier to one
// string value.
func stringValues(m modifiers, r string) ([]value, error) {
	pats := [][]globTok{parseWildcards(r)}
	cased := m.cased
	for _, t := range m.chain {
		var next [][]globTok
		for _, p := range pats {
			switch t {
			case "base64", "base64offset":
				lit, ok := literal(p)
				if !ok {
					return nil, unsupported("wildcard in a %s value", t)
				}
				for _, enc := range encodeBase64(lit, t == "base64offset") {
					next = append(next, []globTok{{lit: enc}})
				}
				cased = true // base64 text is case-sensitive
			case "windash":
				ws, err := windash(p)
				if err != nil {
					return nil, err
				}
				next = append(next, ws...)
			}
		}
		pats = next
	}
	out := make([]value, 0, len(pats))
	for _, p := range pats {
		switch m.wrap {
		case "contains":
			p = append(append([]globTok{{wild: '*'}}, p...), globTok{wild: '*'})
		case "startswith":
			p = append(p, globTok{wild: '*'})
		case "endswith":
			p = append([]globTok{{wild: '*'}}, p...)
		}
		out = append(out, compileGlob(p, cased))
	}
	return out, nil
}

// encodeBase64 returns the base64 form of s, or with offset the three
// forms s takes inside a longer base64 text (shifted by 0, 1 and 2 bytes,
// the bytes that depend on the neighbours cut off).
func encodeBase64(s string, offset bool) []string {
	if !offset {
		return []string{base64.StdEncoding.EncodeToString([]byte(s))}
	}
	var out []string
	for i := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", i) + s))
		start := [3]int{0, 2, 3}[i]
		end := len(enc) - [3]int{0, 3, 2}[(len(s)+i)%3]
		if start < end {
			out = append(out, enc[start:end])
		}
	}
	return out
}

// dashes are the characters windash makes interchangeable.
var dashes = []string{"-", "/", "\u2013", "\u2014", "\u2015"}

// maxWindash bounds the dash positions windash permutes (5^n values).
const maxWindash = 4

// windash returns every variant of p with each option dash (a dash or
// slash at the start of a word) replaced by each of the dash characters.
func windash(p []globTok) ([][]globTok, error) {
	type pos struct{ tok, at, n int }
	var ps []pos
	for ti, t := range p {
		for i := 0; i < len(t.lit); {
			r, n := utf8.DecodeRuneInString(t.lit[i:])
			isDash := r == '-' || r == '/' || r == '\u2013' || r == '\u2014' || r == '\u2015'
			atWordStart := i == 0 && (ti == 0 || p[ti-1].wild != 0) || i > 0 && t.lit[i-1] == ' '
			if isDash && atWordStart {
				ps = append(ps, pos{ti, i, n})
			}
			i += n
		}
	}
	if len(ps) > maxWindash {
		return nil, unsupported("windash on a value with more than %d options", maxWindash)
	}
	total := 1
	for range ps {
		total *= len(dashes)
	}
	out := make([][]globTok, 0, total)
	for k := range total {
		q := append([]globTok(nil), p...)
		// Replace from the last position so earlier offsets stay valid.
		for j := len(ps) - 1; j >= 0; j-- {
			d := dashes[k/pow(len(dashes), j)%len(dashes)]
			t := &q[ps[j].tok]
			t.lit = t.lit[:ps[j].at] + d + t.lit[ps[j].at+ps[j].n:]
		}
		out = append(out, q)
	}
	return out, nil
}

func pow(b, e int) int {
	r := 1
	for range e {
		r *= b
	}
	return r
}
