package conf

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxProblems is the most problems an Error lists; the rest are counted.
const MaxProblems = 20

// Problem is one thing wrong in a config file, where it is written (Line
// and Col are 1-based; 0 when the problem has no place, such as a value
// the file does not set).
type Problem struct {
	Line, Col int
	Msg       string
}

// Error is every problem found in one config file, in file order.
type Error struct {
	File     string
	Problems []Problem
}

// Error returns one line per problem, "FILE:LINE:COL: message" (or "FILE:
// message" without a place), at most MaxProblems of them, then a line
// counting the others. A newline inside a message is written as \n.
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		p.Msg = strings.ReplaceAll(p.Msg, "\n", `\n`)
		if i == MaxProblems {
			fmt.Fprintf(&b, "%s: %d more problems not shown\n", e.File, len(e.Problems)-i)
			break
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d:%d: %s\n", e.File, p.Line, p.Col, p.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", e.File, p.Msg)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// report collects the problems of one file.
type report struct {
	md    toml.MetaData
	loc   locator
	probs []Problem
}

// add records msg at the key path (at its value when value is set), or at
// the nearest enclosing table that is written.
func (r *report) add(path string, value bool, msg string) {
	p, _ := r.loc.at(path)
	if value {
		r.probs = append(r.probs, Problem{p.ValLine, p.ValCol, msg})
	} else {
		r.probs = append(r.probs, Problem{p.Line, p.Col, msg})
	}
}

// check records every error joined in err (errors.Join trees are walked,
// also below a wrapper, each part keeping the wrapper's words) at table.
// The words of a message that name keys are followed down from
// table to the deepest key that is written ("blocklist: lists[1] ("b"):
// kind ..." under enrich.blocklist is placed at that list's kind), and the
// problem is placed at that key's value. A message that quotes a value and
// lists the allowed ones (`"tlss": want udp, tcp or tls`, `"x" is not a or
// b`) gets the closest one suggested. Validate methods of new sections
// thus need nothing more than messages that name their key.
func (r *report) check(table string, err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			r.check(table, e)
		}
		return
	}
	msg := err.Error()
	// A join wrapped with words before it (fmt.Errorf("x: %w",
	// errors.Join(a, b))) is split too: "x: a" and "x: b".
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			if prefix, ok := strings.CutSuffix(msg, e.Error()); ok {
				for _, x := range j.Unwrap() {
					r.check(table, prefixed{prefix, x})
				}
				return
			}
			break
		}
	}
	path := table
	words := strings.Fields(msg)
	for _, w := range words[:min(8, len(words))] {
		w = strings.Trim(w, ":,()")
		key, _, indexed := strings.Cut(w, "[")
		if _, ok := r.loc[join(path, w)]; ok && w != "" {
			path = join(path, w) // a key, or an element of an array of tables
		} else if _, ok := r.loc[join(path, key)]; ok && indexed && key != "" {
			path = join(path, key) // an element of an array of values: at its key
		}
	}
	if m := enumMsg.FindStringSubmatch(msg); m != nil {
		alts := strings.FieldsFunc(strings.ReplaceAll(m[2], " or ", ", "), func(c rune) bool { return c == ',' || c == ' ' })
		for i := range alts {
			alts[i] = strings.Trim(alts[i], `"`)
		}
		if s := closest(m[1], alts); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
	r.add(path, true, msg)
}

// prefixed is err with words before its message.
type prefixed struct {
	prefix string
	err    error
}

func (p prefixed) Error() string { return p.prefix + p.err.Error() }
func (p prefixed) Unwrap() error { return p.err }

// enumMsg matches a message that quotes a value and lists the allowed ones.
var enumMsg = regexp.MustCompile(`"([^"]*)":? (?:want|is not) ([^():;]+)$`)

// err returns the problems of file as an *Error, or nil.
func (r *report) err(file string) error {
	if len(r.probs) == 0 {
		return nil
	}
	slices.SortStableFunc(r.probs, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return &Error{File: file, Problems: r.probs}
}

// table decodes the TOML table p into the struct rv field by field, so
// that every bad key is reported, not only the first: unknown keys (with
// the closest known key), values of the wrong type. Keys not written keep
// the value rv has.
func (r *report) table(p toml.Primitive, path string, rv reflect.Value) {
	var m map[string]toml.Primitive
	if err := r.md.PrimitiveDecode(p, &m); err != nil {
		r.add(path, true, path+": want a table")
		return
	}
	r.fields(m, path, rv)
}

// fields decodes each entry of m into the field of the struct rv with
// that toml name.
func (r *report) fields(m map[string]toml.Primitive, path string, rv reflect.Value) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kp := join(path, k)
		f, ok := field(rv, k)
		if !ok {
			msg := fmt.Sprintf("unknown key %q", kp)
			if s := closest(k, fieldNames(rv.Type())); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			r.add(kp, false, msg)
			continue
		}
		r.value(m[k], kp, f)
	}
}

var textUnmarshaler = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()

// value decodes p into f: tables and arrays of tables key by key, other
// values whole.
func (r *report) value(p toml.Primitive, path string, f reflect.Value) {
	t := f.Type()
	leaf := reflect.PointerTo(t).Implements(textUnmarshaler)
	switch {
	case !leaf && t.Kind() == reflect.Struct:
		r.table(p, path, f)
		return
	case !leaf && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && !t.Implements(textUnmarshaler):
		if f.IsNil() {
			f.Set(reflect.New(t.Elem()))
		}
		r.table(p, path, f.Elem())
		return
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !reflect.PointerTo(t.Elem()).Implements(textUnmarshaler):
		var ps []toml.Primitive
		if err := r.md.PrimitiveDecode(p, &ps); err == nil {
			s := reflect.MakeSlice(t, len(ps), len(ps))
			for i, ep := range ps {
				r.table(ep, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
			}
			f.Set(s)
			return
		}
	}
	if t == durationType {
		// The decoder reads a bare integer as nanoseconds; a duration is
		// written as a string ("2s").
		var v any
		if r.md.PrimitiveDecode(p, &v) == nil {
			if n, ok := v.(int64); ok {
				r.add(path, true, fmt.Sprintf("%s: want a duration string such as \"2s\", got the integer %d", path, n))
				return
			}
		}
	}
	if err := r.md.PrimitiveDecode(p, f.Addr().Interface()); err != nil {
		r.add(path, true, path+": "+typeMsg(path, err))
	}
}

var durationType = reflect.TypeFor[time.Duration]()

var (
	tomlPrefix   = regexp.MustCompile(`^toml: (line \d+ )?(\(last key "[^"]*"\): )?`)
	incompatible = regexp.MustCompile(`incompatible types: TOML value has type (.+); destination has type (.+)$`)
)

// typeMsg turns a decoding error into a message without the parser's
// prefix. The value is not repeated for a secret.
func typeMsg(path string, err error) string {
	var pe toml.ParseError
	msg := err.Error()
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	msg = tomlPrefix.ReplaceAllString(msg, "")
	if m := incompatible.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: want %s, got %s", tomlType(m[2]), tomlType(m[1]))
	}
	if isSecret(path) {
		return "invalid value (not shown: it is a secret)"
	}
	return msg
}

// tomlType names a Go type of a decoder message in TOML's words.
func tomlType(t string) string {
	switch {
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "integer"
	case strings.HasPrefix(t, "float"):
		return "float"
	case strings.HasPrefix(t, "[]") || t == "slice" || t == "array":
		return "array"
	case strings.HasPrefix(t, "map") || t == "struct":
		return "table"
	}
	return t
}

// isSecret reports whether a key (or key = value line) sets a secret.
func isSecret(key string) bool {
	key = strings.ToLower(key)
	return strings.Contains(key, "password") || strings.Contains(key, "api_key") || strings.Contains(key, "secret")
}

// field finds the field of struct rv named name by its toml tag, looking
// into embedded structs. TOML keys are case-sensitive: a name that differs
// from a tag only in case is not that field (the decoder would take it,
// so "USER" would set user), and Parse reports it as an unknown key.
func field(rv reflect.Value, name string) (reflect.Value, bool) {
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		if sf.Anonymous && tag == "" && sf.Type.Kind() == reflect.Struct {
			if f, ok := field(rv.Field(i), name); ok {
				return f, true
			}
			continue
		}
		if tag == "" {
			tag = sf.Name
		}
		if tag == name {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// fieldNames lists the toml names of the fields of struct type t.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		switch {
		case tag == "-" || !sf.IsExported():
		case sf.Anonymous && tag == "" && sf.Type.Kind() == reflect.Struct:
			names = append(names, fieldNames(sf.Type)...)
		case tag == "":
			names = append(names, sf.Name)
		default:
			names = append(names, tag)
		}
	}
	return names
}

// oneOf returns nil when value is one of allowed, else an error naming key
// and the allowed values (report.check adds the closest one).
func oneOf(key, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return fmt.Errorf("%s %q: want %s", key, value, orList(allowed))
}

// orList writes "a, b or c".
func orList(l []string) string {
	if len(l) < 2 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// closest returns the candidate nearest to word when it is near enough to
// be a likely typo (at most 2 edits, and fewer than half of word's
// letters; a swap of two neighbours is one edit), else "".
func closest(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), strings.ToLower(c)); d < bestD && 2*d < len(word) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b
// (insertions, deletions, substitutions and swaps of adjacent bytes).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
