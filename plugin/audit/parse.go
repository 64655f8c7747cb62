package audit

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// ParseError says why a line is not an audit record. Reason is a short,
// stable word used as a counter label.
type ParseError struct {
	Reason string
	Detail string
}

func (e *ParseError) Error() string { return e.Reason + ": " + e.Detail }

func perr(reason, format string, args ...any) error {
	return &ParseError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Reason returns the counter label of err: the ParseError reason, or "other".
func Reason(err error) string {
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return "other"
}

// isUntrusted reports whether name is written through the untrusted-string
// rule: quoted when plain, upper-case hex otherwise. The names are those
// auparse decodes (auparse/typetab.h, audit-userspace 4.x): its
// AUPARSE_TYPE_ESCAPED names, hyphens as on the wire, the AppArmor ones
// (compiled in WITH_APPARMOR), name and key (ESCAPED_FILE, ESCAPED_KEY),
// proctitle (PROCTITLE) and data (TTY_DATA); and dev, which the kernel's
// IMA records write with audit_log_untrustedstring. hostname and terminal
// are not among them: libaudit writes them as given
// (audit_log_user_message: "hostname=%s addr=%s terminal=%s"). A switch
// compiles to a fast search.
func isUntrusted(name string) bool {
	switch name {
	case "path", "comm", "exe", "file", "name", "watch", "cwd", "cmd", "acct", "dir", "key", "vm",
		"old-chardev", "new-chardev", "old-disk", "new-disk", "old-fs", "new-fs", "old-net", "new-net",
		"device", "cgroup", "old-rng", "new-rng", "ocomm", "grp", "new_group", "invalid_context",
		"sw", "root_dir", "proctitle", "data", "dev",
		"apparmor", "operation", "denied_mask", "info", "profile", "requested_mask":
		return true
	}
	return false
}

// Parser turns lines of auditd's string format into Records.
//
// It hands out Records and their Fields from slabs, so parsing costs far
// less than one allocation per record; a slab is reused once all of its
// records have been released (see Event.Release and the ownership rule in
// slab.go), and left to the garbage collector otherwise. Field strings
// point into the line, which therefore must not change after Parse, or
// into decoded bytes that are never reused. A Parser is not safe for
// concurrent use; releases may come from any goroutine.
type Parser struct {
	cur  *slab     // where the record being parsed and its fields go
	run  int       // where the fields of the record being parsed start in cur.fields
	free *slabList // released slabs, shared with every slab of this parser
	buf  []byte
}

// splitHeader splits line's record header, "[node=NODE ]type=TYPE ", from
// the rest (which starts with the stamp in every line Parse accepts): NODE
// and TYPE end at the first space. It is the one place that reads the
// header; the error is Parse's for a line without one.
func splitHeader(line string) (node, typ, rest string, err error) {
	s := line
	if strings.HasPrefix(s, "node=") {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return "", "", "", perr("truncated", "node= prefix without a record")
		}
		node = s[5:i]
		s = s[i+1:]
	}
	if !strings.HasPrefix(s, "type=") {
		return "", "", "", perr("no_type", "line does not start with type=")
	}
	s = s[5:]
	i := strings.IndexByte(s, ' ')
	if i <= 0 {
		return "", "", "", perr("truncated", "no msg= after type")
	}
	return node, s[:i], s[i+1:], nil
}

// HeaderLen returns the length of line's record header as Parse reads it,
// "[node=NODE ]type=TYPE " (what comes before the msg=audit( stamp), or -1
// when line has none.
func HeaderLen(line string) int {
	_, _, rest, err := splitHeader(line)
	if err != nil {
		return -1
	}
	return len(line) - len(rest)
}

// Parse parses one line (without its newline) into a Record. It returns a
// *ParseError when the line has no usable record header (type, msg=audit(...)),
// or when it ends inside a "...", '...' or {...} value (reason truncated:
// the line was cut short, and the value would be made up).
// The header's stamp may lack the colon after its closing parenthesis
// (auditd 2.x daemon records); such a record is marked Irregular. Text
// after the header that is not name=value is kept: the record is
// marked Irregular and its Line is kept by the encoders.
func (p *Parser) Parse(line string) (*Record, error) {
	node, typ, s, err := splitHeader(line)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(s, "msg=audit(") {
		return nil, perr("no_msg", "expected msg=audit( after type=%s", clip(typ))
	}
	s = s[10:]
	sec, msec, serial, rest, colon, ok := parseStamp(s)
	if !ok {
		return nil, perr("bad_timestamp", "malformed audit(SEC.MSEC:SERIAL): stamp")
	}
	typeNum := TypeNumber(typ)
	// Without the colon the line cannot be rebuilt from its parts: keep
	// it; nor with an empty node= (the rebuild writes node= for a node).
	irregular := !colon || (node == "" && strings.HasPrefix(line, "node="))
	if rest != "" {
		if rest[0] == ' ' {
			rest = rest[1:]
		} else {
			irregular = true
		}
	}
	p.begin()
	if typeNum == TypeAVC && p.avcDecision(rest) {
		// seresult and seperms are not name=value on the wire: the
		// line is what rebuilds the record.
		irregular = true
	}
	tail, irr, cut := p.parseFields(rest, typeNum, false)
	irregular = irregular || irr
	nested := -1
	if IsUserSpace(typeNum) {
		nested = p.expandNested(typeNum)
	}
	n := len(p.cur.fields) - p.run
	gs := 0
	if tail >= 0 {
		gs = len(line) - len(rest) + tail
		_, irr, tcut := p.parseFields(rest[tail+1:], 0, true)
		// A 0x1D with nothing after it: the rebuild writes one only
		// before ENRICHED fields.
		irregular = irregular || irr || tail+1 == len(rest)
		cut = cmp.Or(cut, tcut)
	}
	if cut != "" {
		p.cur.fields = p.cur.fields[:p.run] // drop the run: no record takes it
		return nil, perr("truncated", "the value of %s opens a quote the line never closes: the line was cut short", clip(cut))
	}
	r := p.newRecord()
	*r = Record{Node: node, Type: typ, TypeNum: typeNum, Sec: sec, Msec: msec, Serial: serial, Line: line,
		NestedFrom: nested, Irregular: irregular, gs: gs,
		Fields: p.fields(0, n), Interp: p.fields(n, len(p.cur.fields)-p.run), slab: p.cur}
	return r, nil
}

// parseStamp parses "SEC.MSEC:SERIAL)" and the colon after it; colon
// says whether the colon was there.
func parseStamp(s string) (sec int64, msec uint16, serial uint32, rest string, colon, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && i < 19 {
		sec = sec*10 + int64(s[i]-'0')
		i++
	}
	if i == 0 || i >= len(s) || s[i] != '.' {
		return
	}
	i++
	j := i
	var ms uint32
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-j < 3 {
		ms = ms*10 + uint32(s[i]-'0')
		i++
	}
	if i-j != 3 || i >= len(s) || s[i] != ':' {
		return
	}
	i++
	j = i
	var ser uint64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-j < 10 {
		ser = ser*10 + uint64(s[i]-'0')
		i++
	}
	if i == j || ser > 1<<32-1 || i >= len(s) || s[i] != ')' {
		return
	}
	i++
	if i < len(s) && s[i] == ':' {
		return sec, uint16(ms), uint32(ser), s[i+1:], true, true
	}
	// auditd 2.x writes some of its own DAEMON_* records without the colon
	// ("msg=audit(1490239800.477:34) config changed, auid=0 ..."), and
	// ausearch reads them: accept a space or the end of the line instead.
	if i < len(s) && s[i] != ' ' {
		return
	}
	return sec, uint16(ms), uint32(ser), s[i:], false, true
}

// parseFields parses name=value pairs from s into the run of fields being
// parsed (see addField). It stops at a
// 0x1D byte found between fields and returns its offset (-1 when none).
// interp selects the rules of the ENRICHED tail. cut names the first field
// whose "...", '...' or {...} value is never closed: it runs to the end
// of s, which was cut short (auditd and the kernel close every quote).
func (p *Parser) parseFields(s string, typ uint16, interp bool) (gs int, irregular bool, cut string) {
	i := 0
	first := true
	for i < len(s) {
		// separator
		sp := 0
		for i < len(s) && s[i] == ' ' {
			i++
			sp++
		}
		if i >= len(s) {
			if sp > 0 {
				irregular = true
			}
			break
		}
		if s[i] == 0x1D && !interp {
			return i, irregular || sp > 0, cut
		}
		if (first && sp != 0) || (!first && sp != 1) {
			irregular = true
		}
		first = false
		// name
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != 0x1D {
			i++
		}
		if i >= len(s) || s[i] != '=' || i == start {
			irregular = true // a token that is not name=value
			if i == start {
				i++ // "=x", or 0x1D in the tail: step over it or loop forever
			}
			continue
		}
		name := s[start:i]
		i++
		f := Field{Name: name}
		vstart := i
		if i < len(s) {
			switch s[i] {
			case '"':
				j := strings.IndexByte(s[i+1:], '"')
				if j < 0 {
					i = len(s)
					irregular = true
					cut = cmp.Or(cut, name)
				} else {
					i += j + 2
				}
				f.Enc = Quoted
				f.Raw = s[vstart:i]
				f.Value = unquote(f.Raw)
			case '\'':
				j := closingSingle(s, i+1)
				if j < 0 {
					i = len(s)
					irregular = true
					cut = cmp.Or(cut, name)
				} else {
					i = j + 1
				}
				f.Enc = SingleQuoted
				f.Raw = s[vstart:i]
				f.Value = unquote(f.Raw)
			case '{':
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					i = len(s)
					irregular = true
					cut = cmp.Or(cut, name)
				} else {
					i += j + 1
				}
				f.Raw = s[vstart:i]
				f.Value = f.Raw
			default:
				for i < len(s) && s[i] != ' ' && (s[i] != 0x1D || interp) {
					i++
				}
				f.Raw = s[vstart:i]
				f.Value = f.Raw
				if p.shouldDecodeHex(name, typ, interp) && isUpperHex(f.Raw) {
					f.Enc = Hex
					f.Value = p.decodeHex(f.Raw)
				}
			}
		}
		p.addField(f)
	}
	return -1, irregular, cut
}

func (p *Parser) shouldDecodeHex(name string, typ uint16, interp bool) bool {
	if interp {
		// ENRICHED uid/gid names: quoted normally, hex when they needed encoding.
		return strings.HasSuffix(name, "ID")
	}
	if isUntrusted(name) {
		return true
	}
	if typ == 1309 && len(name) > 1 && name[0] == 'a' && name[1] >= '0' && name[1] <= '9' {
		return !strings.HasSuffix(name, "_len")
	}
	return false
}

// expandNested parses the msg='...' value of a user-space record of type
// typ into fields appended after the outer ones (for USER_AVC, after the
// fields of its SELinux decision, see avcDecision). It returns the index
// of the first nested field, or -1.
func (p *Parser) expandNested(typ uint16) int {
	for k := p.run; k < len(p.cur.fields); k++ {
		f := p.cur.fields[k]
		if f.Name == "msg" && f.Enc == SingleQuoted {
			from := len(p.cur.fields) - p.run
			inner := strings.TrimSpace(f.Value)
			if typ == TypeUserAVC {
				p.avcDecision(inner) // may move the run to a new slab
			}
			// May move the run to a new slab. The quotes of msg='...' are
			// closed, so the line was not cut: an inner value that opens a
			// quote and never closes it is kept as it is (raw.msg holds it).
			p.parseFields(inner, 0, false)
			if len(p.cur.fields)-p.run == from {
				return -1
			}
			return from
		}
	}
	return -1
}

// avcDecision adds to the run the fields that auparse names seresult and
// seperms, when s starts with the text SELinux writes before the fields of
// an AVC or USER_AVC, "avc:  denied  { read write } for ": seresult is the
// decision, denied or granted, and seperms the permissions between the
// braces as written (the kernel separates several by single spaces), when
// there are braces holding only words. Both point into s. Any other text ("avc:  received
// setenforce notice") adds nothing. It reports whether it added fields.
// The words themselves are still skipped by parseFields, as text that is
// not name=value.
func (p *Parser) avcDecision(s string) bool {
	s, ok := strings.CutPrefix(s, "avc:")
	if !ok {
		return false
	}
	s = strings.TrimLeft(s, " ")
	result, rest, _ := strings.Cut(s, " ")
	if result != "denied" && result != "granted" {
		return false
	}
	p.addField(Field{Name: "seresult", Raw: result, Value: result})
	rest = strings.TrimLeft(rest, " ")
	if len(rest) == 0 || rest[0] != '{' {
		return true
	}
	if end := strings.IndexByte(rest, '}'); end > 0 {
		// Permissions are words: a '=' or '"' means the brace closes
		// later, in a value (a cut line: "{ read for comm="a}b"").
		if perms := strings.Trim(rest[1:end], " "); perms != "" && !strings.ContainsAny(perms, "=\"") {
			p.addField(Field{Name: "seperms", Raw: perms, Value: perms})
		}
	}
	return true
}

// closingSingle finds the quote that ends a '...' value: the last ' before
// a space, a 0x1D or the end of s.
func closingSingle(s string, from int) int {
	for j := from; j < len(s); j++ {
		if s[j] == '\'' && (j+1 == len(s) || s[j+1] == ' ' || s[j+1] == 0x1D) {
			return j
		}
	}
	return -1
}

func unquote(raw string) string {
	if len(raw) >= 2 && raw[len(raw)-1] == raw[0] {
		return raw[1 : len(raw)-1]
	}
	return raw[1:]
}

func isUpperHex(s string) bool {
	if len(s) < 2 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

func (p *Parser) decodeHex(s string) string {
	b := p.alloc(len(s) / 2)
	for i := range b {
		b[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
