package encode

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// SchemaVersion is the version of the output document schema
// (docs/schema/event.schema.json). It changes only on incompatible changes.
const SchemaVersion = 1

// Full writes events as the full (lossless) profile, in JSON (one object
// per line) or msgpack: one walk of the event model over a Writer, so
// both formats carry the same fields. It reuses its scratch space, so
// encoding allocates nothing in the steady state. A Full is not safe for
// concurrent use. The zero value writes JSON.
//
// Guarantees: the output is valid JSON (or msgpack) and valid UTF-8; no
// object has two keys that differ only by case (a repeated name gets a
// "~N" suffix); values that are not valid UTF-8 are escaped reversibly
// and their paths listed in the record's "escaped" array (see
// docs/schema.md). Decoded, a msgpack document is the same data as the
// JSON document of the same event.
type Full struct {
	// Format is JSON (the zero value) or Msgpack.
	Format  Format
	w       Writer
	sum     audit.Summary
	tsSec   int64
	tsBuf   []byte
	idBuf   []byte
	escaped []string
	keys    []string // keys of the record's fields object
	ikeys   []string // keys of its enriched object
	nkeys   []string // keys of a nested msg object
	argv    []string // scratch for a PROCTITLE's argv
	letters []byte   // scratch for the enc strings
	threat  ThreatCache
	sigma   SigmaCache
	tagc    tagCache
	rules   ruleRun
	// the process context of the last event that had one: the process
	// table hands the children of one parent the same values
	// (audit.Enrichment)
	parent listRun[audit.Process]  // process.parent
	chain  listRun[*audit.Process] // ancestry
	cgroup listRun[audit.Cgroup]   // container, systemd, cgroup
}

// Append appends the document for ev to b (a JSON document is followed by
// a newline).
func (e *Full) Append(b []byte, ev *audit.Event) []byte {
	w := &e.w
	w.Reset(e.Format, b)
	e.escaped = e.escaped[:0]
	e.write(w, ev)
	w.End()
	b, w.B = w.B, nil
	return b
}

// write walks the event model: identity, records, summary, enrichment.
func (e *Full) write(w *Writer, ev *audit.Event) {
	s := ev.Summary
	if s == nil {
		audit.Summarize(ev, &e.sum)
		s = &e.sum
	}
	w.Open()
	w.Key("schema_version")
	w.Int(SchemaVersion)
	w.Key("kind")
	w.Str(ev.Kind.String())
	w.Key("@timestamp")
	w.Plain(e.timestamp(ev.ID))
	w.Key("event")
	w.Open()
	w.Key("id")
	if isPlainASCII(ev.ID.Node) {
		e.idBuf = ev.ID.Append(e.idBuf[:0])
		w.Plain(e.idBuf)
	} else {
		e.val(w, ev.ID.String(), "event.id", "")
	}
	w.Key("serial")
	w.Uint(uint64(ev.ID.Serial))
	w.OptStr("outcome", s.Outcome)
	e.flag(w, "timed_out", ev.TimedOut)
	e.flag(w, "evicted", ev.Evicted)
	e.flag(w, "late", ev.Late)
	w.OptStr("action", s.Syscall)
	if ev.Severity > 0 {
		w.Key("severity")
		w.Int(int64(ev.Severity))
	}
	w.Close()
	if ev.ID.Node != "" {
		w.Key("host")
		w.Open()
		w.Key("name")
		e.val(w, ev.ID.Node, "host.name", "")
		w.Close()
	}
	docEscaped := len(e.escaped)
	w.Key("records")
	w.OpenArray()
	for _, r := range ev.Records {
		e.record(w, r, docEscaped)
	}
	e.escaped = e.escaped[:docEscaped]
	w.CloseArray()
	e.summary(w, ev, s)
	e.enrichment(w, ev)
	if len(e.escaped) > 0 {
		w.Key("escaped")
		w.Strs(e.escaped)
	}
	w.Close()
}

// flag writes k:true when v is set.
func (e *Full) flag(w *Writer, k string, v bool) {
	if v {
		w.Key(k)
		w.Bool(true)
	}
}

// timestamp is @timestamp: UTC, milliseconds, "Z".
func (e *Full) timestamp(id audit.EventID) []byte {
	if id.Sec != e.tsSec || len(e.tsBuf) == 0 {
		e.tsSec = id.Sec
		e.tsBuf = id.Time().AppendFormat(e.tsBuf[:0], "2006-01-02T15:04:05.000Z")
	}
	n := len(e.tsBuf) - 4
	e.tsBuf[n], e.tsBuf[n+1], e.tsBuf[n+2] = byte('0'+id.Msec/100), byte('0'+id.Msec/10%10), byte('0'+id.Msec%10)
	return e.tsBuf
}

// record writes one record; its escaped paths are listed in the record
// and kept out of the document's list (which ends at docEscaped).
func (e *Full) record(w *Writer, r *audit.Record, docEscaped int) {
	e.escaped = e.escaped[:docEscaped]
	w.Open()
	w.Key("type")
	e.val(w, r.Type, "type", "")
	if r.TypeNum != 0 && audit.TypeName(r.TypeNum) != r.Type {
		w.Key("type_num")
		w.Uint(uint64(r.TypeNum))
	}
	outer := r.Fields
	var nested []audit.Field
	if r.NestedFrom >= 0 {
		outer, nested = r.Fields[:r.NestedFrom], r.Fields[r.NestedFrom:]
	}
	// Keys of the fields, nested msg and enriched objects; a rename keeps
	// the line so that the wire names stay recoverable.
	var r1, r2, r3 bool
	plain := r.PlainText()
	e.keys, r1 = objectKeys(outer, e.keys, plain)
	e.nkeys, r2 = objectKeys(nested, e.nkeys, plain)
	e.ikeys, r3 = objectKeys(r.Interp, e.ikeys, plain)
	keepLine := r.Irregular || r1 || r2 || r3
	w.Key("fields")
	w.Open()
	e.fields(w, outer, e.keys, nested, "fields.", true, plain)
	w.Close()
	// raw: the wire form of every value that decoding changed beyond
	// removing plain double quotes.
	first := true
	for i := range outer {
		f := &outer[i]
		if f.Enc == audit.Hex || f.Enc == audit.SingleQuoted || (f.Enc == audit.Bare && audit.IsSentinel(f.Value)) {
			if first {
				w.Key("raw")
				w.Open()
				first = false
			}
			if plain && f.Enc != audit.SingleQuoted {
				w.PlainMember(e.keys[i], f.Raw) // hex digits, or a bare sentinel
			} else {
				e.member(w, e.keys[i], f.Raw, "raw.", f.Name)
			}
		}
	}
	if !first {
		w.Close()
	}
	w.Key("enc")
	w.Plain(e.encLetters(outer))
	if len(r.Interp) > 0 {
		w.Key("enriched")
		w.Open()
		e.fields(w, r.Interp, e.ikeys, nil, "enriched.", false, plain)
		w.Close()
		w.Key("enriched_enc")
		w.Plain(e.encLetters(r.Interp))
	}
	switch r.TypeNum {
	case audit.TypeProctitle:
		if v, ok := r.Get("proctitle"); ok {
			w.Key("argv")
			w.OpenArray()
			e.argv = audit.SplitNUL(v, e.argv[:0])
			for _, a := range e.argv {
				e.val(w, a, "argv", "")
			}
			w.CloseArray()
		}
	case 1306: // SOCKADDR
		if v, ok := r.Get("saddr"); ok {
			if sa, ok := audit.DecodeSockaddr(v); ok {
				w.Key("sockaddr")
				w.Open()
				w.Key("family")
				w.Str(sa.Family)
				w.OptStr("address", sa.Address)
				if sa.Port >= 0 {
					w.Key("port")
					w.Int(int64(sa.Port))
				}
				e.optVal(w, "path", sa.Path, "sockaddr.path")
				w.Close()
			}
		}
	}
	if keepLine {
		w.Key("line")
		e.val(w, r.Line, "line", "")
	}
	if len(e.escaped) > docEscaped {
		w.Key("escaped")
		w.Strs(e.escaped[docEscaped:])
	}
	w.Close()
}

// encLetters is the enc string of fs: one letter per field (b bare, q
// quoted, h hex, s single-quoted).
func (e *Full) encLetters(fs []audit.Field) []byte {
	e.letters = e.letters[:0]
	for i := range fs {
		e.letters = append(e.letters, "bqhs"[fs[i].Enc])
	}
	return e.letters
}

// fields writes name:value pairs under the keys objectKeys chose; the
// first single-quoted msg field, when it has nested fields, becomes an
// object of them. With nulls, bare sentinels
// are written as null (their wire form goes to "raw"). plain is the
// record's PlainText: its names and Bare or Quoted values are copied as
// they are.
func (e *Full) fields(w *Writer, fs []audit.Field, keys []string, nested []audit.Field, path string, nulls, plain bool) {
	for i := range fs {
		f := &fs[i]
		switch {
		case f.Enc == audit.SingleQuoted && f.Name == "msg" && len(nested) > 0:
			e.key(w, keys[i])
			w.Open()
			e.fields(w, nested, e.nkeys, nil, "fields.msg.", true, plain)
			w.Close()
			// The parser expands the first msg='...' only: a later one
			// is its text.
			nested = nil
		case nulls && f.Enc == audit.Bare && audit.IsSentinel(f.Value):
			e.key(w, keys[i])
			w.Null()
		case plain && (f.Enc == audit.Bare || f.Enc == audit.Quoted):
			w.PlainMember(keys[i], f.Value)
		default:
			e.member(w, keys[i], f.Value, path, f.Name)
		}
	}
}

// member writes key:value, both from the input, remembering the paths
// of escaped ones ("keys."+key, path+name).
func (e *Full) member(w *Writer, key, value, path, name string) {
	keyOK, valOK := w.Member(key, value)
	if !keyOK {
		e.escaped = append(e.escaped, "keys."+key)
	}
	if !valOK {
		e.escaped = append(e.escaped, path+name)
	}
}

// key writes an object key taken from the input.
func (e *Full) key(w *Writer, key string) {
	if !w.FieldKey(key) {
		e.escaped = append(e.escaped, "keys."+key)
	}
}

// objectKeys returns the JSON keys of an object of fields: each field's
// name, except that a name equal (ignoring case, in the Unicode sense) to an
// earlier key becomes "name~N", with the smallest N >= 2 that equals no
// other name or key of the object. renamed reports whether that happened;
// the encoder then keeps the record's line, so the wire names stay
// recoverable. Cost is linear in the number of fields. ascii says that
// every name is ASCII (audit.Record.PlainText): the names are then hashed
// from at most two words each (asciiHash).
func objectKeys(fs []audit.Field, dst []string, ascii bool) (keys []string, renamed bool) {
	dst = dst[:0]
	// A 256-bit filter of the folded names seen so far: only a name whose
	// bit is already set needs a real check.
	var seen [4]uint64
	var used, all map[string]bool // built at the first real collision
	var next map[string]int       // next suffix to try, per folded name
	for i := range fs {
		name := fs[i].Name
		var h uint32
		if ascii {
			h = uint32(asciiHash(name) >> 56)
		} else {
			h = uint32(foldHash(name) >> 56)
		}
		bit := &seen[h>>6]
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

// foldHash hashes the folded form of a name: names equal ignoring case
// (in the Unicode sense) hash equal. An ASCII name is hashed as it is
// (asciiHash ignores ASCII case), any other folded first.
func foldHash(s string) uint64 {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return asciiHash(fold(s))
		}
	}
	return asciiHash(s)
}

// asciiHash hashes an ASCII name, ignoring case, from its length and its
// first and last 8, 4 or 2 bytes (all of it up to 16 bytes), with bit
// 0x20 set in every byte (so both cases of a letter agree; other bytes may
// collide, which only costs objectKeys an exact check); its high bits are the well-mixed
// ones.
func asciiHash(s string) uint64 {
	const lower, prime = 0x2020202020202020, 0x9e3779b97f4a7c15
	var a, b uint64
	switch n := len(s); {
	case n >= 8:
		a, b = load8(s, 0), load8(s, n-8)
	case n >= 4:
		a, b = load4(s, 0), load4(s, n-4)
	case n >= 2:
		a, b = uint64(s[0])|uint64(s[1])<<8, uint64(s[n-2])|uint64(s[n-1])<<8
	case n == 1:
		a = uint64(s[0])
	}
	h := ((a | lower) ^ uint64(len(s))<<56) * prime
	return (h ^ (b | lower)) * prime
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

// val writes s as a string; if s is not valid UTF-8 it is written in the
// escaped form and path+name is remembered for the "escaped" list.
func (e *Full) val(w *Writer, s, path, name string) {
	if !w.Str(s) {
		e.escaped = append(e.escaped, path+name)
	}
}

// vals writes xs as an array, each element as val does (path listed once
// per escaped element).
func (e *Full) vals(w *Writer, xs []string, path string) {
	w.OpenArray()
	for _, x := range xs {
		e.val(w, x, path, "")
	}
	w.CloseArray()
}

// optVal writes the member k with the value s, as val does, when s is
// not empty.
func (e *Full) optVal(w *Writer, k, s, path string) {
	if s != "" {
		w.Key(k)
		e.val(w, s, path, "")
	}
}

// summary writes the ECS-named summary: process, user, file, tags.
func (e *Full) summary(w *Writer, ev *audit.Event, s *audit.Summary) {
	// process is opened when one of its members is written (never empty):
	// an event of a lone PROCTITLE record, or of a ppid only, has one.
	name := audit.ProcessName(s)
	pid, ppid := isDigits(s.PID), isDigits(s.PPID)
	if pid || ppid || s.Exe != "" || name != "" || len(s.Args) > 0 || len(s.Title) > 0 || s.Cwd != "" || ev.Parent != nil {
		w.Key("process")
		w.Open()
		if pid {
			w.Key("pid")
			w.Digits(s.PID)
		}
		if ppid {
			w.Key("ppid")
			w.Digits(s.PPID)
		}
		e.optVal(w, "executable", s.Exe, "process.executable")
		e.optVal(w, "name", name, "process.name")
		if len(s.Args) > 0 {
			w.Key("args")
			e.vals(w, s.Args, "process.args")
			w.Key("args_count")
			w.Int(int64(len(s.Args)))
		}
		if len(s.Title) > 0 {
			w.Key("title")
			if !w.Joined(s.Title) {
				e.escaped = append(e.escaped, "process.title")
			}
		}
		e.optVal(w, "working_directory", s.Cwd, "process.working_directory")
		if ev.Parent != nil {
			e.processParent(w, ev.Parent)
		}
		w.Close()
	}
	if s.UID != "" || s.AUID != "" {
		w.Key("user")
		w.Open()
		if s.UID != "" {
			idName(w, s.UID, s.UName)
		}
		if s.AUID != "" && !audit.IsUnsetID(s.AUID) {
			w.Key("audit")
			w.Open()
			idName(w, s.AUID, s.AUName)
			w.Close()
		}
		if s.EUID != "" && s.EUID != s.UID {
			w.Key("effective")
			w.Open()
			idName(w, s.EUID, s.EUName)
			w.Close()
		}
		w.Close()
	}
	if s.FilePath != "" || s.Hashes != [3]string{} || s.Sha512 != "" {
		w.Key("file")
		w.Open()
		e.optVal(w, "path", s.FilePath, "file.path")
		if s.Hashes != [3]string{} || s.Sha512 != "" {
			w.Key("hash")
			w.Open()
			for i, algo := range [...]string{"sha256", "sha1", "md5", "sha512"} {
				v := s.Sha512
				if i < 3 {
					v = s.Hashes[i]
				}
				if v != "" {
					w.Key(algo)
					w.Str(v)
				}
			}
			w.Close()
		}
		w.Close()
	}
	if len(s.Keys) > 0 || len(ev.Tags) > 0 {
		w.Key("tags")
		w.OpenArray()
		for _, k := range s.Keys {
			e.val(w, k, "tags", "")
		}
		e.tags(w, ev.Tags, s.Keys)
		w.CloseArray()
	}
}

// processParent writes the member "parent" of process: the bytes kept
// for the last event with the same parent, else written afresh (and
// kept).
func (e *Full) processParent(w *Writer, p *audit.Process) {
	if e.parent.put(e, one(p)) {
		return
	}
	m, escaped := w.mark(), len(e.escaped)
	w.Key("parent")
	w.Open()
	w.Key("pid")
	w.Int(int64(p.PID))
	e.optVal(w, "executable", p.Executable, "process.parent.executable")
	e.optVal(w, "comm", p.Comm, "process.parent.comm")
	if len(p.Args) > 0 {
		w.Key("args")
		e.vals(w, p.Args, "process.parent.args")
	}
	w.Close()
	e.parent.keep(e, one(p), m, escaped)
}

// tags writes the elements of tags that are not among keys (written
// before them). The rule enrichers hand the events with the same hits one
// shared list (audit.Enrichment), and the events of one rule key share
// their keys, so when tags is the same slice as the last list written,
// with equal keys, in the same format, its bytes are appended again (see
// tagCache).
func (e *Full) tags(w *Writer, tags, keys []string) {
	c := &e.tagc
	if slices.Equal(c.keys, keys) && c.put(e, tags) {
		return
	}
	m, escaped := w.mark(), len(e.escaped)
	for _, t := range tags {
		if !slices.Contains(keys, t) {
			e.val(w, t, "tags", "")
		}
	}
	if len(tags) > 0 {
		c.keep(e, tags, m, escaped)
		c.keys = append(c.keys[:0], keys...)
	}
}

// tagCache is the last list of tags a Full encoder wrote, with the keys
// written before it (the tags among them were left out).
type tagCache struct {
	listRun[string]          // the elements written
	keys            []string // the keys, compared by value
}

// listRun is the run of values a Full encoder last wrote from a shared
// list, kept with the list (its identity counts: audit.SameList) and the
// paths it added to "escaped". Under audit.Enrichment's contract the same
// slice holds the same elements, so where the values depend on the list
// alone, the next event with the same list gets them with one copy. The
// run holds the list, so its array is not reused while it compares
// against it. A shared value (a *T) is the list one(p).
type listRun[T any] struct {
	span             // the values, as written
	src     []T      // the list as given
	escaped []string // the paths added to "escaped" while writing them
}

// put writes the run again, and lists its escaped paths again, when xs
// is its list and it was kept in e's format; it reports whether it did.
func (r *listRun[T]) put(e *Full, xs []T) bool {
	if !audit.SameList(r.src, xs) || !r.span.put(&e.w) {
		return false
	}
	e.escaped = append(e.escaped, r.escaped...)
	return true
}

// keep sets r to the values written from xs since m; e's "escaped" list
// was escaped long at m.
func (r *listRun[T]) keep(e *Full, xs []T, m mark, escaped int) {
	r.span.keep(&e.w, m)
	r.src = xs
	r.escaped = append(r.escaped[:0], e.escaped[escaped:]...)
}

// one is the one-element list of *p: lists made by one are the same
// (audit.SameList) exactly when their pointers are, and a list holds
// what it points to.
func one[T any](p *T) []T { return unsafe.Slice(p, 1) }

func idName(w *Writer, id, name string) {
	w.Key("id")
	w.Str(id)
	w.OptStr("name", name)
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

// load4 returns s[i:i+4] as a little-endian word.
func load4(s string, i int) uint64 {
	_ = s[i+3]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24
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
