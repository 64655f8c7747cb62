package encode

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Format is the wire format a Writer writes: JSON or msgpack.
type Format uint8

const (
	// JSON writes one JSON text per document, followed by a newline.
	JSON Format = iota
	// Msgpack writes one msgpack value per document (maps and arrays in
	// their smallest form, integers in the smallest form that holds them,
	// strings as str). Decoded, it is the same data as the JSON document.
	Msgpack
)

// maxDepth bounds the nesting of containers; the documents of this
// package nest at most six deep.
const maxDepth = 16

// Writer writes one document as a tree of objects, arrays and scalars in
// its Format. The profiles (full, ecs) walk the event model once and call
// the Writer; JSON and msgpack are two implementations of the same calls,
// so a field added to a profile is in both formats.
//
// The calling code keeps the grammar: inside an object every value is
// preceded by Key or FieldKey; inside an array values follow one another.
// Strings are written as they are when they are valid UTF-8; otherwise in
// the reversible escaped form of docs/schema.md (every backslash as \x5c,
// every invalid byte as \xHH), and the call reports false so that the
// caller can list the value's path in "escaped". Both formats write the
// same escaped text.
//
// A Writer is not safe for concurrent use. The zero value writes JSON to
// a nil buffer; Reset starts a new document.
type Writer struct {
	// B is the output: the document is appended to it.
	B      []byte
	format Format
	sep    bool // JSON: a value was written at this level, the next needs a comma
	depth  int
	at     [maxDepth]int    // msgpack: offset of each open container's header
	n      [maxDepth]uint32 // msgpack: values in each open container
	tmp    []byte           // msgpack: scratch for escaped strings
	start  int              // where the document began in B
	last   int              // size of the previous document
}

// Reset starts a new document in format f, appended to b. When b has
// less room than the previous document took, it is grown once to that
// size first (a fresh buffer is then not grown step by step).
func (w *Writer) Reset(f Format, b []byte) {
	if cap(b)-len(b) < w.last {
		b = slices.Grow(b, w.last)
	}
	w.B, w.format, w.sep, w.depth, w.start = b, f, false, 0, len(b)
}

// Format is the format being written.
func (w *Writer) Format() Format { return w.format }

// End finishes the document: JSON documents end with a newline (JSON
// Lines); msgpack values need no separator.
func (w *Writer) End() {
	if w.format == JSON {
		w.B = append(w.B, '\n')
	}
	w.last = len(w.B) - w.start
}

// value starts a value: the comma before it (JSON) or one more value in
// the enclosing container (msgpack).
func (w *Writer) value() {
	if w.format == Msgpack {
		w.n[w.depth]++
		return
	}
	if w.sep {
		w.B = append(w.B, ',')
	}
	w.sep = true
}

// Key writes an object member's name: k is a constant of plain ASCII
// (no quote, backslash or control byte).
func (w *Writer) Key(k string) {
	if w.format == Msgpack {
		w.B = appendStrHeader(w.B, len(k))
		w.B = append(w.B, k...)
		return
	}
	b := w.B
	if w.sep {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, k...)
	w.B = append(b, '"', ':')
	w.sep = false
}

// FieldKey writes an object member's name taken from the input; it
// reports false when k was written in the escaped form.
func (w *Writer) FieldKey(k string) bool {
	if w.format == Msgpack {
		return w.mpStr(k)
	}
	if w.sep {
		w.B = append(w.B, ',')
	}
	var ok bool
	w.B, ok = appendStrOK(w.B, k)
	w.B = append(w.B, ':')
	w.sep = false
	return ok
}

// Member writes an object member whose name and value both come from the
// input: FieldKey(k) then Str(v) in one call (the records' fields, the
// hot loop of the full profile). keyOK and valOK are their results.
func (w *Writer) Member(k, v string) (keyOK, valOK bool) {
	if w.format == Msgpack {
		w.n[w.depth]++
		keyOK = w.mpStr(k)
		return keyOK, w.mpStr(v)
	}
	if w.sep {
		w.B = append(w.B, ',')
	}
	w.sep = true
	b, keyOK := appendStrOK(w.B, k)
	b = append(b, ':')
	w.B, valOK = appendStrOK(b, v)
	return keyOK, valOK
}

// PlainMember writes an object member whose name and value are both plain
// text (bytes 0x20 to 0x7e, no '"' or '\\', as audit.Record.PlainText
// guarantees): copied without escaping or a UTF-8 check.
func (w *Writer) PlainMember(k, v string) {
	w.value()
	b := w.B
	if w.format == Msgpack {
		b = appendStrHeader(b, len(k))
		b = append(b, k...)
		b = appendStrHeader(b, len(v))
		w.B = append(b, v...)
		return
	}
	b = append(b, '"')
	b = append(b, k...)
	b = append(b, '"', ':', '"')
	b = append(b, v...)
	w.B = append(b, '"')
}

// Str writes a string; it reports false when s was not valid UTF-8 and
// was written in the escaped form.
func (w *Writer) Str(s string) bool {
	if w.format == Msgpack {
		w.n[w.depth]++
		return w.mpStr(s)
	}
	b := w.B
	if w.sep {
		b = append(b, ',')
	}
	w.sep = true
	b, ok := appendStrOK(b, s)
	w.B = b
	return ok
}

// OptStr writes the member k with the string v, or nothing when v is
// empty (the form of every optional string member of the documents).
func (w *Writer) OptStr(k, v string) {
	if v != "" {
		w.Key(k)
		w.Str(v)
	}
}

// Plain writes b as a string; b is plain ASCII (no quote, backslash or
// control byte), such as a formatted time or an event id.
func (w *Writer) Plain(b []byte) {
	w.value()
	if w.format == Msgpack {
		w.B = appendStrHeader(w.B, len(b))
		w.B = append(w.B, b...)
		return
	}
	w.B = append(w.B, '"')
	w.B = append(w.B, b...)
	w.B = append(w.B, '"')
}

// Joined writes parts joined by single spaces as one string; it reports
// false when the result was written in the escaped form.
func (w *Writer) Joined(parts []string) bool {
	n := len(parts) - 1
	for _, p := range parts {
		if !utf8.ValidString(p) {
			return w.Str(joinSpace(parts))
		}
		n += len(p)
	}
	w.value()
	if w.format == Msgpack {
		w.B = appendStrHeader(w.B, max(n, 0))
		for i, p := range parts {
			if i > 0 {
				w.B = append(w.B, ' ')
			}
			w.B = append(w.B, p...)
		}
		return true
	}
	w.B = append(w.B, '"')
	for i, p := range parts {
		if i > 0 {
			w.B = append(w.B, ' ')
		}
		w.B = appendStrBody(w.B, p)
	}
	w.B = append(w.B, '"')
	return true
}

func joinSpace(parts []string) string {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, p...)
	}
	return string(b)
}

// Strs writes an array of strings (escaped values are not reported).
func (w *Writer) Strs(xs []string) {
	w.OpenArray()
	for _, x := range xs {
		w.Str(x)
	}
	w.CloseArray()
}

// Int writes an integer.
func (w *Writer) Int(v int64) {
	w.value()
	if w.format == Msgpack {
		w.B = appendMsgpackInt(w.B, v)
		return
	}
	w.B = strconv.AppendInt(w.B, v, 10)
}

// Uint writes an unsigned integer.
func (w *Writer) Uint(v uint64) {
	w.value()
	if w.format == Msgpack {
		w.B = appendMsgpackUint(w.B, v)
		return
	}
	w.B = strconv.AppendUint(w.B, v, 10)
}

// Digits writes a decimal integer given as text; s must satisfy
// IsJSONInt (at most 18 digits, no sign, no leading zero).
func (w *Writer) Digits(s string) {
	w.value()
	if w.format == Msgpack {
		var v uint64
		for i := 0; i < len(s); i++ {
			v = v*10 + uint64(s[i]-'0')
		}
		w.B = appendMsgpackUint(w.B, v)
		return
	}
	w.B = append(w.B, s...)
}

// Bool writes true or false.
func (w *Writer) Bool(v bool) {
	w.value()
	switch {
	case w.format == Msgpack && v:
		w.B = append(w.B, 0xc3)
	case w.format == Msgpack:
		w.B = append(w.B, 0xc2)
	case v:
		w.B = append(w.B, "true"...)
	default:
		w.B = append(w.B, "false"...)
	}
}

// Null writes null (msgpack nil).
func (w *Writer) Null() {
	w.value()
	if w.format == Msgpack {
		w.B = append(w.B, 0xc0)
		return
	}
	w.B = append(w.B, "null"...)
}

// Raw writes a complete value that a Writer of the same format wrote
// before (a cached rendering).
func (w *Writer) Raw(v []byte) {
	w.value()
	w.B = append(w.B, v...)
}

// RawValues writes n consecutive values that a Writer of the same format
// wrote before: array elements, or object members (a name and its value
// count as one value). v holds them as written, in JSON without a comma
// before the first; empty v is no value (n matters to msgpack only).
func (w *Writer) RawValues(v []byte, n int) {
	if len(v) == 0 {
		return
	}
	w.value()
	if w.format == Msgpack {
		w.n[w.depth] += uint32(n - 1) // value counted the first
	}
	w.B = append(w.B, v...)
}

// Open starts an object; Close ends it.
func (w *Writer) Open() { w.open(0x80, '{') }

// Close ends the innermost object.
func (w *Writer) Close() {
	if w.format == Msgpack {
		w.close(0x80, 0xde)
		return
	}
	w.B = append(w.B, '}')
	w.sep = true
}

// OpenArray starts an array; CloseArray ends it.
func (w *Writer) OpenArray() { w.open(0x90, '[') }

// CloseArray ends the innermost array.
func (w *Writer) CloseArray() {
	if w.format == Msgpack {
		w.close(0x90, 0xdc)
		return
	}
	w.B = append(w.B, ']')
	w.sep = true
}

func (w *Writer) open(fix, json byte) {
	if w.format == Msgpack {
		w.n[w.depth]++
		w.depth++
		w.at[w.depth], w.n[w.depth] = len(w.B), 0
		w.B = append(w.B, fix) // the count is filled in by close
		return
	}
	if w.sep {
		w.B = append(w.B, ',', json)
	} else {
		w.B = append(w.B, json)
	}
	w.sep = false
}

// close (msgpack) fills in the msgpack header of the container: one byte (fixmap,
// fixarray) when it holds fewer than 16 values, else the 16- or 32-bit
// form, for which the contents move up by 2 or 4 bytes.
func (w *Writer) close(fix, x16 byte) {
	at, n := w.at[w.depth], w.n[w.depth]
	w.depth--
	if n < 16 {
		w.B[at] = fix | byte(n)
		return
	}
	extra := 2
	if n > math.MaxUint16 {
		extra = 4
	}
	w.B = append(w.B, make([]byte, extra)...)
	copy(w.B[at+1+extra:], w.B[at+1:len(w.B)-extra])
	if extra == 2 {
		w.B[at], w.B[at+1], w.B[at+2] = x16, byte(n>>8), byte(n)
		return
	}
	w.B[at], w.B[at+1], w.B[at+2], w.B[at+3], w.B[at+4] = x16+1, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// mpStr writes s as a msgpack str (escaped form when not valid UTF-8).
func (w *Writer) mpStr(s string) bool {
	if utf8.ValidString(s) {
		w.B = appendStrHeader(w.B, len(s))
		w.B = append(w.B, s...)
		return true
	}
	w.tmp = appendEscapedText(w.tmp[:0], s)
	w.B = appendStrHeader(w.B, len(w.tmp))
	w.B = append(w.B, w.tmp...)
	return false
}

// appendEscapedText appends the escaped form of s that is not valid
// UTF-8, as text (what a JSON reader decodes from appendStrOK's output).
func appendEscapedText(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' {
			b = append(b, `\x5c`...)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, '\\', 'x', hexdigits[c>>4], hexdigits[c&15])
			i++
			continue
		}
		b = append(b, s[i:i+size]...)
		i += size
	}
	return b
}

func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xda, byte(n>>8), byte(n))
	}
	return append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendMsgpackUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xcf, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendMsgpackInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendMsgpackUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xd3, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// mark is where a run of values began in a Writer (see span).
type mark struct {
	at  int    // offset in B
	sep bool   // JSON: a comma precedes the first value
	n   uint32 // msgpack: values in the container so far
}

// mark returns where the next value begins.
func (w *Writer) mark() mark { return mark{len(w.B), w.sep, w.n[w.depth]} }

// span is a run of values a Writer wrote, kept to be written again by a
// Writer of the same format (RawValues): the encoders' byte caches.
type span struct {
	ok     bool // a run was kept (its doc may be empty: no value)
	format Format
	doc    []byte // as written, in JSON without the comma before the first
	n      int    // msgpack: how many values
}

// keep sets s to the values w wrote since m, in the same container.
func (s *span) keep(w *Writer, m mark) {
	doc := w.B[m.at:]
	if w.format == JSON && m.sep && len(doc) > 0 {
		doc = doc[1:]
	}
	s.ok, s.format, s.n = true, w.format, int(w.n[w.depth]-m.n)
	s.doc = append(s.doc[:0], doc...)
}

// put writes the kept run again when it was kept in w's format, and
// reports whether it did.
func (s *span) put(w *Writer) bool {
	if !s.ok || s.format != w.format {
		return false
	}
	w.RawValues(s.doc, s.n)
	return true
}
