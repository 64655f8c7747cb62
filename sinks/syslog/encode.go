package syslog

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Formats and framings.
const (
	FormatRFC5424 = "rfc5424"
	FormatRFC3164 = "rfc3164"

	FramingOctetCounting = "octet-counting" // RFC 6587 §3.4.1: "LEN SP MSG"
	FramingLF            = "lf"             // RFC 6587 §3.4.2: "MSG LF"
	FramingNone          = ""               // one record per datagram
)

// SDID is the SD-ID of the structured-data element the sink writes
// (32473 is the private enterprise number RFC 5612 reserves for examples).
const SDID = "audisp@32473"

// truncMark3164 ends an RFC 3164 message that was cut.
const truncMark3164 = " [truncated]"

// Options fix how Encode renders records. Build them with Config.Options.
type Options struct {
	Format   string // FormatRFC5424 or FormatRFC3164
	Framing  string // FramingOctetCounting, FramingLF or FramingNone
	Facility int    // 0..23
	Severity int    // 0..7, or -1 to map Meta.Severity (see MapSeverity)
	AppName  string // printable ASCII, validated by Config
	Hostname string // printable ASCII, validated by Config
	ProcID   string // printable ASCII or ""
	MaxBytes int    // cap of the syslog message without framing, ≥ MinMessageBytes
}

// Options returns the encoder options of a validated Config.
func (c *Config) Options(procID string) Options {
	sev := -1
	if s, ok := severities[c.Severity]; ok {
		sev = s
	}
	return Options{
		Format:   c.Format,
		Framing:  c.Framing,
		Facility: facilities[c.Facility],
		Severity: sev,
		AppName:  c.AppName,
		Hostname: c.Hostname,
		ProcID:   procID,
		MaxBytes: c.MaxMessageBytes,
	}
}

// Record is one message to encode.
type Record struct {
	Time time.Time // zero: NILVALUE in RFC 5424, now in RFC 3164
	Meta sinks.Meta
	Msg  []byte // the event document (JSON), any bytes
}

// MapSeverity maps an event severity (0 none, 1 low, 2 medium, 3 high,
// 4 critical) to a syslog severity (info, notice, warning, err, crit).
func MapSeverity(s int) int {
	switch {
	case s <= 0:
		return 6
	case s == 1:
		return 5
	case s == 2:
		return 4
	case s == 3:
		return 3
	default:
		return 2
	}
}

// Encode appends one framed syslog record to dst and returns it, and
// whether MSG had to be truncated to fit o.MaxBytes.
//
// Guarantees, for any Record: the output is exactly one frame for
// o.Framing; the syslog message (framing excluded) is at most o.MaxBytes
// long when o.MaxBytes ≥ MinMessageBytes and the options come from a
// validated Config (ProcID at most 16 bytes); it contains no NUL byte; unless
// the framing is octet counting (which is safe by construction and keeps
// MSG byte-exact apart from NUL), MSG and all header and SD values contain
// no C0 control byte other than TAB and no DEL. Escaped bytes are written
// as \u00XX, which keeps a JSON document valid when the byte was inside a
// string. SD PARAM-VALUEs escape '"', '\' and ']' with a backslash (RFC
// 5424 §6.3.3) and are always valid UTF-8.
func Encode(dst []byte, o *Options, r *Record) ([]byte, bool) {
	strict := o.Format == FormatRFC3164 || o.Framing != FramingOctetCounting
	sev := o.Severity
	if sev < 0 || sev > 7 {
		sev = MapSeverity(r.Meta.Severity)
	}
	pri := o.Facility<<3 | sev

	var b []byte
	if o.Format == FormatRFC3164 {
		b = header3164(make([]byte, 0, 128), pri, o, r.Time)
	} else {
		b = header5424(make([]byte, 0, 256), pri, o, r)
	}
	// room left for MSG (and for RFC 5424 its leading space).
	body, truncated := b, false
	if o.Format == FormatRFC3164 {
		room := o.MaxBytes - len(b)
		if n := escapedLen(r.Msg, strict); n > room {
			truncated = true
			body = appendEscaped(body, r.Msg, strict, room-len(truncMark3164))
			body = append(body, truncMark3164...)
		} else {
			body = appendEscaped(body, r.Msg, strict, room)
		}
	} else {
		sd := appendSD(nil, sdParams(&r.Meta))
		need := len(b) + len(sd)
		if len(r.Msg) > 0 {
			need += 1 + escapedLen(r.Msg, strict)
		}
		if need <= o.MaxBytes {
			body = append(body, sd...)
			if len(r.Msg) > 0 {
				body = append(body, ' ')
				body = appendEscaped(body, r.Msg, strict, len(r.Msg)*6)
			}
		} else {
			truncated = true
			ps := sdParams(&r.Meta)
			ps = append(ps, [2]string{"truncated", "true"}, [2]string{"orig_bytes", strconv.Itoa(len(r.Msg))})
			// Keep the markers; drop metadata from the end of the list
			// while the header and SD alone leave less than a quarter.
			for {
				sd = appendSD(sd[:0], ps)
				if len(b)+len(sd)+1 <= o.MaxBytes*3/4 || len(ps) == 2 {
					break
				}
				ps = append(ps[:len(ps)-3], ps[len(ps)-2:]...)
			}
			body = append(body, sd...)
			body = append(body, ' ')
			body = appendEscaped(body, r.Msg, strict, o.MaxBytes-len(body))
		}
	}
	switch o.Framing {
	case FramingOctetCounting:
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, ' ')
		dst = append(dst, body...)
	case FramingLF:
		dst = append(dst, body...)
		dst = append(dst, '\n')
	default:
		dst = append(dst, body...)
	}
	return dst, truncated
}

func header5424(b []byte, pri int, o *Options, r *Record) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, ">1 "...)
	if r.Time.IsZero() {
		b = append(b, '-')
	} else {
		b = r.Time.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	}
	b = append(b, ' ')
	b = appendToken(b, o.Hostname, 255)
	b = append(b, ' ')
	b = appendToken(b, o.AppName, 48)
	b = append(b, ' ')
	b = appendToken(b, o.ProcID, 128)
	b = append(b, ' ')
	b = appendToken(b, r.Meta.Kind, 32) // MSGID
	return append(b, ' ')
}

func header3164(b []byte, pri int, o *Options, t time.Time) []byte {
	if t.IsZero() {
		t = time.Now()
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, '>')
	b = t.AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = appendToken(b, o.Hostname, 255)
	b = append(b, ' ')
	b = appendToken(b, o.AppName, 32)
	if o.ProcID != "" {
		b = append(b, '[')
		b = appendToken(b, o.ProcID, 16)
		b = append(b, ']')
	}
	return append(b, ": "...)
}

// appendToken appends v as an RFC 5424 header field: printable US-ASCII,
// anything else replaced by '_', at most max bytes, "-" when empty.
func appendToken(b []byte, v string, max int) []byte {
	if v == "" {
		return append(b, '-')
	}
	if len(v) > max {
		v = v[:max]
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// maxParamValue caps one SD PARAM-VALUE before escaping.
const maxParamValue = 256

// sdParams lists the SD-PARAMs of a message; list values are comma-joined.
func sdParams(m *sinks.Meta) [][2]string {
	ps := make([][2]string, 0, 8)
	add := func(name, v string) {
		if v != "" {
			ps = append(ps, [2]string{name, v})
		}
	}
	add("node", m.Node)
	add("severity", strconv.Itoa(m.Severity))
	add("type", strings.Join(m.Types, ","))
	add("key", strings.Join(m.Keys, ","))
	add("technique", strings.Join(m.Techniques, ","))
	return ps
}

// appendSD appends one SD-ELEMENT [SDID name="value"...].
func appendSD(b []byte, ps [][2]string) []byte {
	b = append(b, '[')
	b = append(b, SDID...)
	for _, p := range ps {
		b = append(b, ' ')
		b = append(b, p[0]...)
		b = append(b, '=', '"')
		b = appendParamValue(b, p[1])
		b = append(b, '"')
	}
	return append(b, ']')
}

// appendParamValue appends v escaped for a PARAM-VALUE: valid UTF-8, cut
// to maxParamValue bytes on a rune boundary, '"', '\' and ']' preceded by
// a backslash, C0 controls and DEL as \u00XX.
func appendParamValue(b []byte, v string) []byte {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) > maxParamValue {
		cut := maxParamValue
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '\\' || c == ']':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = appendUEscape(b, c)
		default:
			b = append(b, c)
		}
	}
	return b
}

const hexDigits = "0123456789ABCDEF"

func appendUEscape(b []byte, c byte) []byte {
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
}

// mustEscape reports whether byte c of MSG is written as \u00XX.
func mustEscape(c byte, strict bool) bool {
	if c == 0 {
		return true
	}
	return strict && (c < 0x20 && c != '\t' || c == 0x7f)
}

// escapedLen is the length appendEscaped would produce without a limit.
func escapedLen(msg []byte, strict bool) int {
	n := len(msg)
	for i := plainRun(msg, strict); i < len(msg); i++ {
		if mustEscape(msg[i], strict) {
			n += 5
		}
	}
	return n
}

// plainRun returns the length of the leading run of msg that needs no
// escaping. A JSON document has none to escape, so the whole of it is
// checked 8 bytes at a time (strict) or with one IndexByte.
func plainRun(msg []byte, strict bool) int {
	if !strict {
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			return i
		}
		return len(msg)
	}
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(msg); i += 8 {
		x := binary.LittleEndian.Uint64(msg[i:])
		// A byte below 0x20 (a tab too: the byte loop sorts it out) or
		// a DEL stops the fast scan.
		del := x ^ 0x7f*ones
		if (x-0x20*ones)&^x&highs|(del-ones)&^del&highs != 0 {
			break
		}
	}
	for i < len(msg) && !mustEscape(msg[i], strict) {
		i++
	}
	return i
}

// appendEscaped appends msg with control bytes escaped, stopping before
// the first unit (escape sequence or UTF-8 sequence; an invalid byte is
// its own unit) that would make the appended part exceed limit bytes.
func appendEscaped(b []byte, msg []byte, strict bool, limit int) []byte {
	room := limit
	for len(msg) > 0 {
		n := plainRun(msg, strict) // the run of bytes copied as they are
		if n > room {
			return append(b, msg[:runeCut(msg, room)]...)
		}
		b, msg, room = append(b, msg[:n]...), msg[n:], room-n
		if len(msg) == 0 || room < 6 {
			return b
		}
		b, msg, room = appendUEscape(b, msg[0]), msg[1:], room-6
	}
	return b
}

// runeCut returns the largest cut ≤ n (n < len(p)) that does not split a
// valid UTF-8 sequence of p.
func runeCut(p []byte, n int) int {
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i-1]) {
			if _, size := utf8.DecodeRune(p[i-1:]); i-1+size > n {
				return i - 1
			}
			return n
		}
	}
	return n
}
