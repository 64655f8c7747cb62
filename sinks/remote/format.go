package remote

import (
	"strings"
)

// FormatRecordLine renders one audit record line for a remote auditd:
// node= set to node, and each extra pair appended as a name=value field
// that ausearch parses.
//
// line is one record as auditd writes it ("[node=X ]type=T msg=audit(...):
// fields[<0x1D>ENRICHED fields]"); a trailing newline is removed and none is
// added. When node is not empty it replaces any node= prefix; an empty node
// keeps the line's own. Characters of node outside printable ASCII and '='
// become '_' (auparse reads node= up to the first space).
//
// Extra fields go after the raw fields and before the 0x1D separator of an
// ENRICHED tail, which stays intact. A name is lower-cased, every byte
// outside [a-z0-9_] becomes '_', and "enrich_" is prefixed unless present.
// A value is written like the kernel writes untrusted strings: in double
// quotes, or as upper-case hex without quotes when it holds a double or
// single quote, a space, a control byte or a byte above 0x7E (the kernel
// rule plus the single quote, which auparse treats specially in msg='...').
// An empty value is "".
func FormatRecordLine(node string, line string, extra [][2]string) string {
	line = strings.TrimRight(line, "\r\n")
	if node != "" {
		if strings.HasPrefix(line, "node=") {
			if sp := strings.IndexByte(line, ' '); sp >= 0 {
				line = line[sp+1:]
			} else {
				line = ""
			}
		}
		line = "node=" + sanitizeNode(node) + " " + line
	}
	if len(extra) == 0 {
		return line
	}
	raw, tail := line, ""
	if i := strings.IndexByte(line, 0x1d); i >= 0 {
		raw, tail = line[:i], line[i:]
	}
	var b strings.Builder
	b.Grow(len(line) + 32*len(extra))
	b.WriteString(strings.TrimRight(raw, " "))
	for _, kv := range extra {
		b.WriteByte(' ')
		b.WriteString(fieldName(kv[0]))
		b.WriteByte('=')
		writeValue(&b, kv[1])
	}
	b.WriteString(tail)
	return b.String()
}

func sanitizeNode(n string) string {
	b := []byte(n)
	for i, c := range b {
		if c < 0x21 || c > 0x7e || c == '=' {
			b[i] = '_'
		}
	}
	return string(b)
}

const enrichPrefix = "enrich_"

func fieldName(n string) string {
	b := []byte(strings.ToLower(n))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	s := string(b)
	if !strings.HasPrefix(s, enrichPrefix) {
		s = enrichPrefix + s
	}
	return s
}

func writeValue(b *strings.Builder, v string) {
	needHex := false
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\'' || c < 0x21 || c > 0x7e {
			needHex = true
			break
		}
	}
	if !needHex {
		b.WriteByte('"')
		b.WriteString(v)
		b.WriteByte('"')
		return
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		b.WriteByte(hex[v[i]>>4])
		b.WriteByte(hex[v[i]&15])
	}
}
