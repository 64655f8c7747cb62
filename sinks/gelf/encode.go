package gelf

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// Flattening rule (docs/configuration.md, "GELF"): every scalar of the
// JSON document becomes one additional field named "_" + its path, the
// object keys joined by "_" and every character outside [A-Za-z0-9_.-]
// replaced by "_" (GELF names must match ^[\w\.\-]*$). An array of
// scalars becomes one string, its elements joined by ","; the elements of
// an array that holds objects or arrays are flattened one by one with
// their index as a path element ("_hunt_0_rule"). Strings and numbers keep
// their JSON form, true and false become the strings "true" and "false",
// null is left out. "@timestamp" becomes the GELF timestamp instead of a
// field. "_id" (which GELF reserves) is written "__id", and a name already
// used gets "_2", "_3", ... appended: the first such name not used either.

// maxShort caps short_message (bytes of its JSON string body).
const maxShort = 1024

// errDoc reports a document that is not a JSON object.
var errDoc = errors.New("document is not a JSON object")

// template is a parsed short_message template: literal text and
// placeholders "{label=path|path}" (label optional). A placeholder takes
// the value of the first path the document has (the elements of an array,
// or the same path inside an array of objects, joined by ","); an empty
// placeholder is left out with its label, and runs of spaces are folded.
type template struct {
	parts []tmplPart
	paths map[string]int // dotted path -> index into the render slots
	slots int
	lens  uint64 // bit n set: a path of n bytes (n < 64) is in paths; bit 63 also for longer ones
}

// mayHave reports whether a path of n bytes can be in paths: a cheap test
// before the map lookup, which most fields of a document fail.
func (t *template) mayHave(n int) bool { return t.lens&(1<<min(n, 63)) != 0 }

type tmplPart struct {
	lit   string
	label string
	alts  []int // slot indexes, first non-empty wins
}

// DefaultTemplate is the default short_message template: action,
// executable, user, techniques and hunting hits, for both profiles.
const DefaultTemplate = "{event.action} {process.executable} {user=user.name|user.id} " +
	"{techniques=threat.technique.subtechnique.id|threat.technique.id} {hunt=audisp_enrich.hunt.rule|hunt.rule}"

func parseTemplate(s string) (*template, error) {
	t := &template{paths: map[string]int{}}
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, errors.New("short_message: '{' without '}'")
		}
		body := s[i+1 : i+j]
		s = s[i+j+1:]
		var p tmplPart
		if k := strings.IndexByte(body, '='); k >= 0 {
			p.label, body = body[:k+1], body[k+1:]
		}
		for _, path := range strings.Split(body, "|") {
			if path == "" || strings.ContainsAny(path, "{} ") {
				return nil, errors.New("short_message: empty or bad field path in {" + body + "}")
			}
			n, ok := t.paths[path]
			if !ok {
				n = t.slots
				t.paths[path] = n
				t.slots++
				t.lens |= 1 << min(len(path), 63)
			}
			p.alts = append(p.alts, n)
		}
		t.parts = append(t.parts, p)
	}
	if t.slots == 0 {
		return nil, errors.New("short_message: the template names no field")
	}
	return t, nil
}

// encoder turns documents into GELF JSON. It reuses its scratch space;
// not safe for concurrent use.
type encoder struct {
	tmpl   *template
	host   string
	out    []byte
	fields []byte
	name   []byte
	path   []byte
	join   []byte
	slots  [][]byte
	used   nameSet // names written, by hash
	ts     string
	nflds  int
	// indexes is how many array indexes e.path holds now: only then
	// can a template slot's path differ from e.path.
	indexes int
}

// usedName is a field name already written: where it is in fields, and
// how many times it was asked for.
type usedName struct{ start, end, n int }

// nameSet maps FNV-1a hashes of the names written in the current message
// to their usedName: an open-addressing table that reset empties in
// constant time (a slot belongs to the current message only when its gen
// is the set's), with no allocation once it has grown to the largest
// message's field count.
type nameSet struct {
	slots []nameSlot // length a power of two, at most 3/4 used
	gen   uint32
	n     int
}

type nameSlot struct {
	h   uint64
	gen uint32
	usedName
}

func (t *nameSet) reset() {
	t.n = 0
	if t.gen++; t.gen == 0 || t.slots == nil { // wrapped: old gens would look current
		t.slots = make([]nameSlot, max(len(t.slots), 64))
		t.gen = 1
	}
}

// find returns h's slot: in use (gen current) when h was added, else the
// empty slot where add puts it.
func (t *nameSet) find(h uint64) *nameSlot {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].gen == t.gen && t.slots[i].h != h {
		i = (i + 1) & mask
	}
	return &t.slots[i]
}

// add sets h to u (h not in the set). Slot pointers from find are
// invalid afterwards.
func (t *nameSet) add(h uint64, u usedName) {
	*t.find(h) = nameSlot{h: h, gen: t.gen, usedName: u}
	if t.n++; t.n*4 > len(t.slots)*3 {
		old := t.slots
		t.slots = make([]nameSlot, 2*len(old))
		for _, s := range old {
			if s.gen == t.gen {
				*t.find(s.h) = s
			}
		}
	}
}

func newEncoder(t *template, host string) *encoder {
	return &encoder{tmpl: t, host: host, slots: make([][]byte, t.slots)}
}

// encode returns the GELF message for doc (a JSON object) with host
// (empty: the configured host) and level, keeping at most keep additional
// fields (-1: all), and the number of additional fields doc has. The
// result is valid only until the next call. An error means doc is not one
// valid JSON object; nothing is sent for it.
func (e *encoder) encode(doc []byte, host string, level int, keep int) ([]byte, int, error) {
	if host == "" {
		host = e.host
	}
	for i := range e.slots {
		e.slots[i] = e.slots[i][:0]
	}
	e.used.reset()
	e.ts, e.nflds, e.path, e.indexes = "", 0, e.path[:0], 0
	p := parser{s: doc}
	p.skipWS()
	if p.peek() != '{' {
		return nil, 0, errDoc
	}
	var err error
	if e.fields, err = e.object(e.fields[:0], &p, 0, 0, keep); err != nil {
		return nil, 0, err
	}
	p.skipWS()
	if p.i != len(p.s) {
		return nil, 0, p.errf("trailing data after the document")
	}
	b := append(e.out[:0], `{"version":"1.1","host":`...)
	b, _ = encode.AppendJSONString(b, host)
	b = append(b, `,"short_message":"`...)
	b = e.short(b)
	b = append(b, `","timestamp":`...)
	b = appendTimestamp(b, e.ts)
	b = append(b, `,"level":`...)
	b = strconv.AppendInt(b, int64(level), 10)
	b = append(b, e.fields...)
	b = append(b, '}')
	e.out = b
	return b, e.nflds, nil
}

// short renders the template as a JSON string body.
func (e *encoder) short(b []byte) []byte {
	start := len(b)
	for _, part := range e.tmpl.parts {
		if part.alts == nil {
			b = appendBody(b, part.lit)
			continue
		}
		for _, n := range part.alts {
			if v := e.slots[n]; len(v) > 0 {
				b = appendBody(b, part.label)
				b = append(b, v...)
				break
			}
		}
	}
	// Fold runs of spaces and trim them.
	w := start
	for r := start; r < len(b); r++ {
		if b[r] == ' ' && (w == start || b[w-1] == ' ') {
			continue
		}
		b[w] = b[r]
		w++
	}
	for w > start && b[w-1] == ' ' {
		w--
	}
	b = b[:w]
	if len(b)-start > maxShort {
		b = b[:start+cutBody(b[start:], maxShort)]
	}
	if len(b) == start {
		b = append(b, "audit event"...)
	}
	return b
}

// appendTimestamp writes the GELF timestamp (seconds since the epoch,
// three decimals) from an RFC 3339 @timestamp, or now.
func appendTimestamp(b []byte, ts string) []byte {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t = time.Now()
	}
	ms := t.UnixMilli()
	b = strconv.AppendInt(b, ms/1000, 10)
	b = append(b, '.')
	f := ms % 1000
	if f < 0 {
		f = -f
	}
	return append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

// object flattens the object at p (p.s[p.i] == '{'). depth guards the
// recursion; pathLen is the length of e.path for this object.
func (e *encoder) object(b []byte, p *parser, depth, pathLen, keep int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("document nested too deeply")
	}
	p.i++ // {
	p.skipWS()
	if p.peek() == '}' {
		p.i++
		return b, nil
	}
	for {
		p.skipWS()
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipWS()
		if p.peek() != ':' {
			return nil, p.errf("':' expected")
		}
		p.i++
		p.skipWS()
		e.path = e.path[:pathLen]
		if pathLen > 0 {
			e.path = append(e.path, '.')
		}
		e.path = appendKeyText(e.path, key)
		if depth == 0 && string(key) == `"@timestamp"` && p.peek() == '"' {
			v, err := p.str()
			if err != nil {
				return nil, err
			}
			e.ts = string(v[1 : len(v)-1])
		} else if b, err = e.value(b, p, depth, len(e.path), keep); err != nil {
			return nil, err
		}
		p.skipWS()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return b, nil
		default:
			return nil, p.errf("',' or '}' expected")
		}
	}
}

// value flattens the value at p under the path e.path[:pathLen].
func (e *encoder) value(b []byte, p *parser, depth, pathLen, keep int) ([]byte, error) {
	switch p.peek() {
	case '{':
		return e.object(b, p, depth+1, pathLen, keep)
	case '[':
		return e.array(b, p, depth+1, pathLen, keep)
	}
	return e.scalar(b, p, e.path[:pathLen], e.path[:pathLen], keep)
}

// scalar writes the scalar at p as the field named by name (null writes
// nothing) and records it for the template slot at slotPath.
func (e *encoder) scalar(b []byte, p *parser, slotPath, name []byte, keep int) ([]byte, error) {
	v, kind, err := p.scalar()
	if err != nil {
		return nil, err
	}
	if kind == kindNull {
		return b, nil
	}
	e.slot(slotPath, v, kind)
	return e.field(b, name, v, kind, keep), nil
}

// array flattens the array at p: scalars joined into one string, or each
// element under its index when any element is an object or an array.
func (e *encoder) array(b []byte, p *parser, depth, pathLen, keep int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("document nested too deeply")
	}
	start := p.i
	nested, err := p.hasNested()
	if err != nil {
		return nil, err
	}
	p.i = start + 1
	p.skipWS()
	if p.peek() == ']' {
		p.i++
		return b, nil
	}
	joined := e.join[:0] // arrays of scalars hold no arrays: no recursion while joining
	defer func() { e.join = joined[:0] }()
	for n := 0; ; n++ {
		p.skipWS()
		if nested {
			e.path = e.path[:pathLen]
			e.path = append(e.path, '.')
			e.path = strconv.AppendInt(e.path, int64(n), 10)
			// Template paths skip array indexes: slot on the unindexed path.
			if b, err = e.indexed(b, p, depth, pathLen, keep); err != nil {
				return nil, err
			}
		} else {
			v, kind, err := p.scalar()
			if err != nil {
				return nil, err
			}
			if kind != kindNull {
				e.slot(e.path[:pathLen], v, kind)
				if len(joined) > 0 {
					joined = append(joined, ',')
				}
				joined = append(joined, body(v, kind)...)
			}
		}
		p.skipWS()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			if !nested && len(joined) > 0 {
				b = e.field(b, e.path[:pathLen], joined, kindJoined, keep)
			}
			return b, nil
		default:
			return nil, p.errf("',' or ']' expected")
		}
	}
}

// indexed flattens one element of an array of objects. Names carry the
// index; template slots use the path without it.
func (e *encoder) indexed(b []byte, p *parser, depth, pathLen, keep int) ([]byte, error) {
	e.indexes++
	defer func() { e.indexes-- }()
	full := len(e.path)
	if p.peek() == '{' || p.peek() == '[' {
		return e.value(b, p, depth, full, keep)
	}
	return e.scalar(b, p, e.path[:pathLen], e.path[:full], keep)
}

// slot records v for the template placeholder whose path is path with
// array indexes removed.
func (e *encoder) slot(path []byte, v []byte, kind int) {
	key := path
	if e.indexes > 0 {
		key = stripIndexes(e.name[:0], path)
		e.name = key
	}
	if !e.tmpl.mayHave(len(key)) {
		return
	}
	n, ok := e.tmpl.paths[string(key)]
	if !ok {
		return
	}
	if len(e.slots[n]) > 0 {
		e.slots[n] = append(e.slots[n], ',')
	}
	e.slots[n] = append(e.slots[n], body(v, kind)...)
}

// stripIndexes removes the path elements that are all digits (array
// indexes).
func stripIndexes(dst, path []byte) []byte {
	for len(path) > 0 {
		el := path
		if i := bytes.IndexByte(path, '.'); i >= 0 {
			el, path = path[:i], path[i+1:]
		} else {
			path = nil
		}
		if allDigits(el) {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, '.')
		}
		dst = append(dst, el...)
	}
	return dst
}

// allDigits reports whether el is a non-empty run of ASCII digits.
func allDigits(el []byte) bool {
	for _, c := range el {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(el) > 0
}

// field writes one additional field, unless keep fields were written
// already.
func (e *encoder) field(b []byte, path, v []byte, kind, keep int) []byte {
	e.nflds++
	if keep >= 0 && e.nflds > keep {
		return b
	}
	b = append(b, `,"_`...)
	nameStart := len(b)
	h := uint64(fnvOffset)
	for _, c := range path {
		if !nameByte[c] {
			c = '_'
		}
		b = append(b, c)
		h = (h ^ uint64(c)) * fnvPrime
	}
	if string(b[nameStart:]) == "id" {
		b = append(b[:nameStart], "_id"...)
		h = hashName(b[nameStart:])
	}
	if u := e.used.find(h); u.gen != e.used.gen {
		e.used.add(h, usedName{nameStart, len(b), 1})
	} else if bytes.Equal(b[u.start:u.end], b[nameStart:]) {
		// Taken: the first of name_2, name_3, ... that is not taken either.
		base := len(b)
		for {
			u.n++
			b = strconv.AppendInt(append(b[:base], '_'), int64(u.n), 10)
			h2 := hashName(b[nameStart:])
			v := e.used.find(h2)
			if v.gen != e.used.gen {
				e.used.add(h2, usedName{nameStart, len(b), 1})
				break
			}
			if !bytes.Equal(b[v.start:v.end], b[nameStart:]) {
				break // another name with this hash: written as is
			}
		}
	}
	b = append(b, '"', ':')
	switch kind {
	case kindString, kindNumber:
		b = append(b, v...)
	default:
		b = append(b, '"')
		b = append(b, body(v, kind)...)
		b = append(b, '"')
	}
	return b
}

// hashName is FNV-1a of a field name. Two different names with one hash
// (a 64-bit collision) are both written unsuffixed.
func hashName(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// nameByte marks the bytes a GELF field name keeps; field writes every
// other byte (the path's dots included) as '_'.
var nameByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	return t
}()

// body is a scalar's text inside a JSON string: a string without its
// quotes (still escaped), other scalars as written.
func body(v []byte, kind int) []byte {
	if kind == kindString {
		return v[1 : len(v)-1]
	}
	return v
}

// appendKeyText appends a JSON key token's text for a path: the body,
// unescaped only for the simple escapes (other escapes stay as text; the
// field name rule replaces their characters anyway).
func appendKeyText(b, key []byte) []byte {
	return append(b, key[1:len(key)-1]...)
}

// cutBody returns the largest n' <= n such that body[:n'] does not split
// a backslash escape or a UTF-8 sequence.
func cutBody(body []byte, n int) int {
	// Back off from n to a position that starts a character: not a UTF-8
	// continuation byte, and not inside an escape.
	for n > 0 {
		if body[n]&0xC0 == 0x80 {
			n--
			continue
		}
		// Count the backslashes ending just before n, and look for an
		// escape that started within the last 6 bytes.
		ok := true
		for k := max(0, n-6); k < n; k++ {
			if body[k] == '\\' {
				bs := 0
				for j := k; j >= 0 && body[j] == '\\'; j-- {
					bs++
				}
				if bs%2 == 1 {
					end := k + 2
					if body[k+1] == 'u' {
						end = k + 6
					}
					if end > n {
						ok = false
						n = k
						break
					}
				}
			}
		}
		if ok {
			return n
		}
	}
	return 0
}

func appendBody(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

const hex = "0123456789abcdef"
