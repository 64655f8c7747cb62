package encode

import (
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SchemaVersion is the version of the output document schema
// (docs/schema/event.schema.json). It changes only on incompatible changes.
const SchemaVersion = 1

// JSONEncoder writes events as one JSON object per line. It reuses its
// scratch space, so encoding allocates nothing in the steady state. A
// JSONEncoder is not safe for concurrent use.
//
// Guarantees: the output is valid JSON and valid UTF-8; no object has two
// keys that differ only by case (a repeated name gets a "~N" suffix);
// values that are not valid UTF-8 are escaped reversibly and their paths
// listed in the record's "escaped" array (see docs/schema.md).
type JSONEncoder struct {
	sum     audit.Summary
	tsSec   int64
	tsBuf   []byte
	escaped []string
	keys    []string // keys of the record's fields object
	ikeys   []string // keys of its enriched object
	nkeys   []string // keys of a nested msg object
	argv    []string // scratch for a PROCTITLE's argv
	threat  threatCache
}

// Append appends the JSON document for ev, followed by a newline, to b.
func (e *JSONEncoder) Append(b []byte, ev *audit.Event) []byte {
	s := ev.Summary
	if s == nil {
		audit.Summarize(ev, &e.sum)
		s = &e.sum
	}
	b = append(b, `{"schema_version":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, `","@timestamp":"`...)
	b = e.appendTimestamp(b, ev.ID)
	b = append(b, `","event":{"id":`...)
	e.escaped = e.escaped[:0]
	if isPlainASCII(ev.ID.Node) {
		b = append(b, '"')
		b = ev.ID.Append(b)
		b = append(b, '"')
	} else {
		b = e.appendVal(b, ev.ID.String(), "event.id", "")
	}
	b = append(b, `,"serial":`...)
	b = strconv.AppendUint(b, uint64(ev.ID.Serial), 10)
	if s.Outcome != "" {
		b = append(b, `,"outcome":"`...)
		b = append(b, s.Outcome...)
		b = append(b, '"')
	}
	if ev.TimedOut {
		b = append(b, `,"timed_out":true`...)
	}
	if ev.Evicted {
		b = append(b, `,"evicted":true`...)
	}
	if ev.Late {
		b = append(b, `,"late":true`...)
	}
	if s.Syscall != "" {
		b = append(b, `,"action":`...)
		b = appendStr(b, s.Syscall)
	}
	if ev.Severity > 0 {
		b = append(b, `,"severity":`...)
		b = strconv.AppendInt(b, int64(ev.Severity), 10)
	}
	b = append(b, '}')
	if ev.ID.Node != "" {
		b = append(b, `,"host":{"name":`...)
		b = e.appendVal(b, ev.ID.Node, "host.name", "")
		b = append(b, '}')
	}
	docEscaped := len(e.escaped)
	b = append(b, `,"records":[`...)
	for i, r := range ev.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendRecord(b, r, docEscaped)
	}
	e.escaped = e.escaped[:docEscaped]
	b = append(b, ']')
	b = e.appendSummary(b, ev, s)
	b = e.appendEnrichment(b, ev)
	if len(e.escaped) > 0 {
		b = append(b, `,"escaped":`...)
		b = appendStrs(b, e.escaped)
	}
	b = append(b, '}', '\n')
	return b
}

func (e *JSONEncoder) appendTimestamp(b []byte, id audit.EventID) []byte {
	if id.Sec != e.tsSec || len(e.tsBuf) == 0 {
		e.tsSec = id.Sec
		e.tsBuf = id.Time().AppendFormat(e.tsBuf[:0], "2006-01-02T15:04:05")
	}
	b = append(b, e.tsBuf...)
	b = append(b, '.', byte('0'+id.Msec/100), byte('0'+id.Msec/10%10), byte('0'+id.Msec%10), 'Z')
	return b
}

// appendRecord writes one record; its escaped paths are listed in the
// record and kept out of the document's list (which ends at docEscaped).
func (e *JSONEncoder) appendRecord(b []byte, r *audit.Record, docEscaped int) []byte {
	e.escaped = e.escaped[:docEscaped]
	b = append(b, `{"type":`...)
	b = e.appendVal(b, r.Type, "type", "")
	if r.TypeNum == 0 || audit.TypeName(r.TypeNum) != r.Type {
		if r.TypeNum != 0 {
			b = append(b, `,"type_num":`...)
			b = strconv.AppendUint(b, uint64(r.TypeNum), 10)
		}
	}
	outer := r.Fields
	var nested []audit.Field
	if r.NestedFrom >= 0 {
		outer, nested = r.Fields[:r.NestedFrom], r.Fields[r.NestedFrom:]
	}
	// Keys of the fields, nested msg and enriched objects; a rename keeps
	// the line so that the wire names stay recoverable.
	var r1, r2, r3 bool
	e.keys, r1 = objectKeys(outer, e.keys)
	e.nkeys, r2 = objectKeys(nested, e.nkeys)
	e.ikeys, r3 = objectKeys(r.Interp, e.ikeys)
	keepLine := r.Irregular || r1 || r2 || r3
	b = append(b, `,"fields":{`...)
	b = e.appendFields(b, outer, e.keys, nested, "fields.", true)
	b = append(b, '}')
	// raw: the wire form of every value that decoding changed beyond
	// removing plain double quotes.
	first := true
	for i := range r.Fields[:len(outer)] {
		f := &r.Fields[i]
		if f.Enc == audit.Hex || f.Enc == audit.SingleQuoted || (f.Enc == audit.Bare && audit.IsSentinel(f.Value)) {
			if first {
				b = append(b, `,"raw":{`...)
				first = false
			} else {
				b = append(b, ',')
			}
			b = e.appendKey(b, e.keys[i])
			b = e.appendVal(b, f.Raw, "raw.", f.Name)
		}
	}
	if !first {
		b = append(b, '}')
	}
	b = append(b, `,"enc":"`...)
	for i := range outer {
		b = append(b, "bqhs"[outer[i].Enc])
	}
	b = append(b, '"')
	if len(r.Interp) > 0 {
		b = append(b, `,"enriched":{`...)
		b = e.appendFields(b, r.Interp, e.ikeys, nil, "enriched.", false)
		b = append(b, `},"enriched_enc":"`...)
		for i := range r.Interp {
			b = append(b, "bqhs"[r.Interp[i].Enc])
		}
		b = append(b, '"')
	}
	switch r.TypeNum {
	case audit.TypeProctitle:
		if v, ok := r.Get("proctitle"); ok {
			b = append(b, `,"argv":[`...)
			e.argv = audit.SplitNUL(v, e.argv[:0])
			for i, a := range e.argv {
				if i > 0 {
					b = append(b, ',')
				}
				b = e.appendVal(b, a, "argv", "")
			}
			b = append(b, ']')
		}
	case 1306: // SOCKADDR
		if v, ok := r.Get("saddr"); ok {
			if sa, ok := audit.DecodeSockaddr(v); ok {
				b = append(b, `,"sockaddr":{"family":`...)
				b = appendStr(b, sa.Family)
				if sa.Address != "" {
					b = append(b, `,"address":`...)
					b = appendStr(b, sa.Address)
				}
				if sa.Port >= 0 {
					b = append(b, `,"port":`...)
					b = strconv.AppendInt(b, int64(sa.Port), 10)
				}
				if sa.Path != "" {
					b = append(b, `,"path":`...)
					b = e.appendVal(b, sa.Path, "sockaddr.path", "")
				}
				b = append(b, '}')
			}
		}
	}
	if keepLine {
		b = append(b, `,"line":`...)
		b = e.appendVal(b, r.Line, "line", "")
	}
	if len(e.escaped) > docEscaped {
		b = append(b, `,"escaped":`...)
		b = appendStrs(b, e.escaped[docEscaped:])
	}
	return append(b, '}')
}

// appendFields writes name:value pairs under the keys objectKeys chose; a
// msg field with nested fields becomes an object. With nulls, bare
// sentinels are written as null (their wire form goes to "raw").
func (e *JSONEncoder) appendFields(b []byte, fs []audit.Field, keys []string, nested []audit.Field, path string, nulls bool) []byte {
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendKey(b, keys[i])
		switch {
		case f.Enc == audit.SingleQuoted && f.Name == "msg" && len(nested) > 0:
			b = append(b, '{')
			b = e.appendFields(b, nested, e.nkeys, nil, "fields.msg.", true)
			b = append(b, '}')
		case nulls && f.Enc == audit.Bare && audit.IsSentinel(f.Value):
			b = append(b, "null"...)
		default:
			b = e.appendVal(b, f.Value, path, f.Name)
		}
	}
	return b
}

// appendKey writes an object key and the colon.
func (e *JSONEncoder) appendKey(b []byte, key string) []byte {
	b = e.appendVal(b, key, "keys.", key)
	return append(b, ':')
}

// objectKeys returns the JSON keys of an object of fields: each field's
// name, except that a name equal (ignoring case, in the Unicode sense) to an
// earlier key becomes "name~N", with the smallest N >= 2 that equals no
// other name or key of the object. renamed reports whether that happened;
// the encoder then keeps the record's line, so the wire names stay
// recoverable. Cost is linear in the number of fields.
func objectKeys(fs []audit.Field, dst []string) (keys []string, renamed bool) {
	dst = dst[:0]
	// A 256-bit filter of the folded names seen so far: only a name whose
	// bit is already set needs a real check.
	var seen [4]uint64
	var used, all map[string]bool // built at the first real collision
	var next map[string]int       // next suffix to try, per folded name
	for i := range fs {
		name := fs[i].Name
		h := foldHash(name)
		bit := &seen[h>>6&3]
		if *bit&(1<<(h&63)) == 0 {
			*bit |= 1 << (h & 63)
			dst = append(dst, name)
			if used != nil {
				used[fold(name)] = true
			}
			continue
		}
		if used == nil {
			if !foldIn(dst, name) {
				dst = append(dst, name)
				continue
			}
			used, all = make(map[string]bool, len(fs)), make(map[string]bool, len(fs))
			for _, k := range dst {
				used[fold(k)] = true
			}
			for j := range fs {
				all[fold(fs[j].Name)] = true
			}
		} else if !used[fold(name)] {
			used[fold(name)] = true
			dst = append(dst, name)
			continue
		}
		renamed = true
		if next == nil {
			next = map[string]int{}
		}
		base := fold(name)
		for n := max(next[base], 2); ; n++ {
			cand := name + "~" + strconv.Itoa(n)
			if f := fold(cand); !used[f] && !all[f] {
				used[f] = true
				next[base] = n + 1
				dst = append(dst, cand)
				break
			}
		}
	}
	return dst, renamed
}

// fold maps a name to its case-folded form (ASCII fast path).
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || (c >= 'A' && c <= 'Z') {
			return strings.ToLower(strings.ToUpper(s))
		}
	}
	return s
}

// foldHash hashes the folded form of a name (FNV-1a).
func foldHash(s string) uint32 {
	f := s
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			f = fold(s)
			break
		}
	}
	h := uint32(2166136261)
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

func foldIn(keys []string, name string) bool {
	for _, k := range keys {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// appendVal writes s as a JSON string; if s is not valid UTF-8 it is written
// in the escaped form and path is remembered for the "escaped" list.
func (e *JSONEncoder) appendVal(b []byte, s, path, name string) []byte {
	b, ok := appendStrOK(b, s)
	if !ok {
		e.escaped = append(e.escaped, path+name)
	}
	return b
}

func (e *JSONEncoder) appendSummary(b []byte, ev *audit.Event, s *audit.Summary) []byte {
	if s.PID != "" || s.Exe != "" || len(s.Args) > 0 || s.Cwd != "" || ev.Parent != nil {
		b = append(b, `,"process":{`...)
		n := 0
		sep := func() {
			if n > 0 {
				b = append(b, ',')
			}
			n++
		}
		if isDigits(s.PID) {
			sep()
			b = append(b, `"pid":`...)
			b = append(b, s.PID...)
		}
		if isDigits(s.PPID) {
			sep()
			b = append(b, `"ppid":`...)
			b = append(b, s.PPID...)
		}
		if s.Exe != "" {
			sep()
			b = append(b, `"executable":`...)
			b = e.appendVal(b, s.Exe, "process.executable", "")
		}
		if name := audit.ProcessName(s); name != "" {
			sep()
			b = append(b, `"name":`...)
			b = e.appendVal(b, name, "process.name", "")
		}
		if len(s.Args) > 0 {
			sep()
			b = append(b, `"args":[`...)
			for i, a := range s.Args {
				if i > 0 {
					b = append(b, ',')
				}
				b = e.appendVal(b, a, "process.args", "")
			}
			b = append(b, ']')
			b = append(b, `,"args_count":`...)
			b = strconv.AppendInt(b, int64(len(s.Args)), 10)
		}
		if len(s.Title) > 0 {
			sep()
			b = append(b, `"title":`...)
			b = e.appendJoined(b, s.Title, "process.title")
		}
		if s.Cwd != "" {
			sep()
			b = append(b, `"working_directory":`...)
			b = e.appendVal(b, s.Cwd, "process.working_directory", "")
		}
		if p := ev.Parent; p != nil {
			sep()
			b = append(b, `"parent":{"pid":`...)
			b = strconv.AppendInt(b, int64(p.PID), 10)
			if p.Executable != "" {
				b = append(b, `,"executable":`...)
				b = appendStr(b, p.Executable)
			}
			if len(p.Args) > 0 {
				b = append(b, `,"args":`...)
				b = appendStrs(b, p.Args)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if s.UID != "" || s.AUID != "" {
		b = append(b, `,"user":{`...)
		n := 0
		if s.UID != "" {
			b = appendIDName(b, s.UID, s.UName)
			n++
		}
		if s.AUID != "" && !audit.IsUnsetID(s.AUID) {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, `"audit":{`...)
			b = appendIDName(b, s.AUID, s.AUName)
			b = append(b, '}')
			n++
		}
		if s.EUID != "" && s.EUID != s.UID {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, `"effective":{`...)
			b = appendIDName(b, s.EUID, s.EUName)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if s.FilePath != "" || s.Hashes != [3]string{} || s.Sha512 != "" {
		b = append(b, `,"file":{`...)
		n := 0
		if s.FilePath != "" {
			b = append(b, `"path":`...)
			b = e.appendVal(b, s.FilePath, "file.path", "")
			n++
		}
		if s.Hashes != [3]string{} || s.Sha512 != "" {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, `"hash":{`...)
			m := 0
			for i, algo := range [...]string{"sha256", "sha1", "md5", "sha512"} {
				v := s.Sha512
				if i < 3 {
					v = s.Hashes[i]
				}
				if v == "" {
					continue
				}
				if m > 0 {
					b = append(b, ',')
				}
				m++
				b = append(b, '"')
				b = append(b, algo...)
				b = append(b, `":`...)
				b = appendStr(b, v)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if len(s.Keys) > 0 || len(ev.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		n := 0
		for _, k := range s.Keys {
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = e.appendVal(b, k, "tags", "")
		}
		for _, t := range ev.Tags {
			if slices.Contains(s.Keys, t) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = e.appendVal(b, t, "tags", "")
		}
		b = append(b, ']')
	}
	return b
}

func appendIDName(b []byte, id, name string) []byte {
	b = append(b, `"id":`...)
	b = appendStr(b, id)
	if name != "" {
		b = append(b, `,"name":`...)
		b = appendStr(b, name)
	}
	return b
}

// appendJoined writes parts joined by spaces as one JSON string.
func (e *JSONEncoder) appendJoined(b []byte, parts []string, path string) []byte {
	for _, p := range parts {
		if !utf8.ValidString(p) {
			return e.appendVal(b, strings.Join(parts, " "), path, "")
		}
	}
	b = append(b, '"')
	for i, p := range parts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendStrBody(b, p)
	}
	return append(b, '"')
}

// isPlainASCII reports whether s needs no JSON escaping at all.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) { // "00" is not a JSON number
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func appendStrs(b []byte, xs []string) []byte {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(b, x)
	}
	return append(b, ']')
}

// appendStr writes s as a JSON string (escaped form when not valid UTF-8).
func appendStr(b []byte, s string) []byte {
	b, _ = appendStrOK(b, s)
	return b
}

const hexdigits = "0123456789abcdef"

// appendStrOK writes s as a JSON string. When s is valid UTF-8 it is written
// as is (JSON-escaped). Otherwise every backslash is written as \x5c and
// every byte that is not part of valid UTF-8 as \xHH (both as literal text
// inside the JSON string), and ok is false: the escaping is reversible.
func appendStrOK(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	mark := len(b)
	if b, ok := appendStrBodyASCII(b, s); ok {
		return append(b, '"'), true
	}
	b = b[:mark]
	if utf8.ValidString(s) {
		b = appendStrBody(b, s)
		return append(b, '"'), true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '\\' {
				b = append(b, `\\x5c`...)
			} else {
				b = appendByte(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, '\\', '\\', 'x', hexdigits[c>>4], hexdigits[c&15])
			i++
			continue
		}
		b = append(b, s[i:i+size]...)
		i += size
	}
	return append(b, '"'), false
}

// appendStrBodyASCII JSON-escapes s in one pass when it is pure ASCII; it
// reports false (having written a partial result) at the first byte >= 0x80.
// Runs of 8 bytes that need no escaping are skipped 8 at a time.
func appendStrBodyASCII(b []byte, s string) ([]byte, bool) {
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && !escape8(load8(s, i)) {
			i += 8
			continue
		}
		c := s[i]
		if plainASCII[c] {
			i++
			continue
		}
		if c >= 0x80 {
			return b, false
		}
		b = append(b, s[start:i]...)
		b = appendByte(b, c)
		i++
		start = i
	}
	return append(b, s[start:]...), true
}

// plainASCII marks the bytes appendStrBodyASCII copies as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// load8 returns s[i:i+8] as a little-endian word (one load on the usual
// platforms).
func load8(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// escape8 reports whether any byte of x needs more than a copy in a JSON
// string from appendStrBodyASCII: a control byte (< 0x20), '"', '\\', DEL,
// or a byte >= 0x80. Byte-parallel tests: a byte below n makes
// (x - n*ones) &^ x set its high bit, and a zero byte of x^(c*ones) marks c.
func escape8(x uint64) bool {
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	return (x&highs)|((x-0x20*ones)&^x&highs)|zero(x^('"'*ones))|zero(x^('\\'*ones))|zero(x^(0x7f*ones)) != 0
}

// appendStrBody JSON-escapes valid UTF-8 s.
func appendStrBody(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendByte(b, c)
		start = i + 1
	}
	return append(b, s[start:]...)
}

func appendByte(b []byte, c byte) []byte {
	switch c {
	case '"':
		return append(b, '\\', '"')
	case '\\':
		return append(b, '\\', '\\')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	if c < 0x20 || c == 0x7f {
		return append(b, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&15])
	}
	return append(b, c)
}
