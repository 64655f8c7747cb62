package audit

import (
	"strconv"
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
	sum     Summary
	tsSec   int64
	tsBuf   []byte
	escaped []string
	names   []string
}

// Append appends the JSON document for ev, followed by a newline, to b.
func (e *JSONEncoder) Append(b []byte, ev *Event) []byte {
	Summarize(ev, &e.sum)
	s := &e.sum
	b = append(b, `{"schema_version":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, `","@timestamp":"`...)
	b = e.appendTimestamp(b, ev.ID)
	b = append(b, `","event":{"id":`...)
	b = appendStr(b, ev.ID.String())
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
		b = appendStr(b, ev.ID.Node)
		b = append(b, '}')
	}
	b = append(b, `,"records":[`...)
	for i, r := range ev.Records {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendRecord(b, r)
	}
	b = append(b, ']')
	e.escaped = e.escaped[:0]
	b = e.appendSummary(b, ev, s)
	b = e.appendEnrichment(b, ev)
	if len(e.escaped) > 0 {
		b = append(b, `,"escaped":`...)
		b = appendStrs(b, e.escaped)
	}
	b = append(b, '}', '\n')
	return b
}

func (e *JSONEncoder) appendTimestamp(b []byte, id EventID) []byte {
	if id.Sec != e.tsSec || len(e.tsBuf) == 0 {
		e.tsSec = id.Sec
		e.tsBuf = id.Time().AppendFormat(e.tsBuf[:0], "2006-01-02T15:04:05")
	}
	b = append(b, e.tsBuf...)
	b = append(b, '.', byte('0'+id.Msec/100), byte('0'+id.Msec/10%10), byte('0'+id.Msec%10), 'Z')
	return b
}

func (e *JSONEncoder) appendRecord(b []byte, r *Record) []byte {
	e.escaped = e.escaped[:0]
	b = append(b, `{"type":`...)
	b = appendStr(b, r.Type)
	if r.TypeNum == 0 || TypeName(r.TypeNum) != r.Type {
		if r.TypeNum != 0 {
			b = append(b, `,"type_num":`...)
			b = strconv.AppendUint(b, uint64(r.TypeNum), 10)
		}
	}
	outer := r.Fields
	var nested []Field
	if r.NestedFrom >= 0 {
		outer, nested = r.Fields[:r.NestedFrom], r.Fields[r.NestedFrom:]
	}
	b = append(b, `,"fields":{`...)
	b = e.appendFields(b, outer, nested, "fields.")
	b = append(b, '}')
	// raw: the wire form of every value that decoding changed beyond
	// removing plain double quotes.
	first := true
	for i := range r.Fields[:len(outer)] {
		f := &r.Fields[i]
		if f.Enc == Hex || f.Enc == SingleQuoted || (f.Enc == Bare && IsSentinel(f.Value)) {
			if first {
				b = append(b, `,"raw":{`...)
				first = false
			} else {
				b = append(b, ',')
			}
			b = e.appendKey(b, f.Name, i, outer)
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
		b = e.appendFields(b, r.Interp, nil, "enriched.")
		b = append(b, `},"enriched_enc":"`...)
		for i := range r.Interp {
			b = append(b, "bqhs"[r.Interp[i].Enc])
		}
		b = append(b, '"')
	}
	switch r.TypeNum {
	case TypeProctitle:
		if v, ok := r.Get("proctitle"); ok {
			b = append(b, `,"argv":[`...)
			for i := 0; v != ""; i++ {
				a := v
				for j := 0; j < len(v); j++ {
					if v[j] == 0 {
						a = v[:j]
						break
					}
				}
				if i > 0 {
					b = append(b, ',')
				}
				b = e.appendVal(b, a, "argv", "")
				if len(a) == len(v) {
					break
				}
				v = v[len(a)+1:]
			}
			b = append(b, ']')
		}
	case 1306: // SOCKADDR
		if v, ok := r.Get("saddr"); ok {
			if sa, ok := DecodeSockaddr(v); ok {
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
	if r.Irregular {
		b = append(b, `,"line":`...)
		b = e.appendVal(b, r.Line, "line", "")
	}
	if len(e.escaped) > 0 {
		b = append(b, `,"escaped":`...)
		b = appendStrs(b, e.escaped)
	}
	return append(b, '}')
}

// appendFields writes name:value pairs; a msg field with nested fields
// becomes an object.
func (e *JSONEncoder) appendFields(b []byte, fs, nested []Field, path string) []byte {
	for i := range fs {
		f := &fs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendKey(b, f.Name, i, fs)
		switch {
		case f.Enc == SingleQuoted && f.Name == "msg" && len(nested) > 0:
			b = append(b, '{')
			b = e.appendFields(b, nested, nil, "fields.msg.")
			b = append(b, '}')
		case f.Enc == Bare && IsSentinel(f.Value):
			b = append(b, "null"...)
		default:
			b = e.appendVal(b, f.Value, path, f.Name)
		}
	}
	return b
}

// appendKey writes the key of fs[i], renamed "name~N" when an earlier key
// of the same object equals it ignoring case.
func (e *JSONEncoder) appendKey(b []byte, name string, i int, fs []Field) []byte {
	dup := 0
	for j := 0; j < i; j++ {
		if len(fs[j].Name) == len(name) && equalFold(fs[j].Name, name) {
			dup++
		}
	}
	b = appendStr(b, name)
	if dup > 0 {
		b = b[:len(b)-1]
		b = append(b, '~')
		b = strconv.AppendInt(b, int64(dup+1), 10)
		b = append(b, '"')
	}
	return append(b, ':')
}

func equalFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x != y && x|0x20 != y|0x20 {
			return false
		}
	}
	return true
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

func (e *JSONEncoder) appendSummary(b []byte, ev *Event, s *Summary) []byte {
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
		if name := processName(s); name != "" {
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
			b = appendJoined(b, s.Title)
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
			b = appendIDName(b, "", s.UID, s.UName)
			n++
		}
		if s.AUID != "" && !IsUnsetID(s.AUID) {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, `"audit":{`...)
			b = appendIDName(b, "", s.AUID, s.AUName)
			b = append(b, '}')
			n++
		}
		if s.EUID != "" && s.EUID != s.UID {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, `"effective":{`...)
			b = appendIDName(b, "", s.EUID, s.EUName)
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
			if containsStr(s.Keys, t) {
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

func processName(s *Summary) string {
	if s.Exe != "" {
		for i := len(s.Exe) - 1; i >= 0; i-- {
			if s.Exe[i] == '/' {
				return s.Exe[i+1:]
			}
		}
		return s.Exe
	}
	return s.Comm
}

func appendIDName(b []byte, _ string, id, name string) []byte {
	b = append(b, `"id":`...)
	b = appendStr(b, id)
	if name != "" {
		b = append(b, `,"name":`...)
		b = appendStr(b, name)
	}
	return b
}

func appendJoined(b []byte, parts []string) []byte {
	b = append(b, '"')
	for i, p := range parts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendStrBody(b, p)
	}
	return append(b, '"')
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
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
func appendStrBodyASCII(b []byte, s string) ([]byte, bool) {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x7f {
			continue
		}
		if c >= 0x80 {
			return b, false
		}
		b = append(b, s[start:i]...)
		b = appendByte(b, c)
		start = i + 1
	}
	return append(b, s[start:]...), true
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
