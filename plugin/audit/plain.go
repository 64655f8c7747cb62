package audit

import "strings"

// PlainText reports that r came from Parser.Parse and that every field
// name and every value of a Bare or Quoted field, in Fields and Interp,
// is plain text: bytes 0x20 to 0x7e other than '"' and '\\', so that an
// encoder may copy it without escaping or a UTF-8 check. (Hex and
// SingleQuoted values are not covered: they are decoded or may hold the
// nested fields' quotes.)
//
// How: those names and values are slices of Line outside every Quoted
// value's quotes (a Quoted value never holds '"') and apart from the 0x1D
// that starts the ENRICHED fields, so it is enough that the rest of Line
// has no byte outside 0x20 to 0x7e and no backslash, and that its
// only double quotes are the two of each closed Quoted field (the spans of
// the fields counted do not overlap: the outer and ENRICHED fields follow
// one another, the nested ones lie inside msg='...', which is not
// counted). The cost is one pass over Line, 8 bytes at a time.
func (r *Record) PlainText() bool {
	if r.slab == nil { // not from the parser: the fields need not be in Line
		return false
	}
	q := 0
	for _, fs := range [2][]Field{r.Fields, r.Interp} {
		for i := range fs {
			if raw := fs[i].Raw; fs[i].Enc == Quoted && len(raw) >= 2 && raw[len(raw)-1] == '"' {
				q++
			}
		}
	}
	head, tail := r.Line, ""
	if r.gs > 0 {
		head, tail = r.Line[:r.gs], r.Line[r.gs+1:]
	}
	return plainBytes(head) && plainBytes(tail) && strings.Count(r.Line, `"`) == 2*q
}

// plainBytes reports that every byte of s is in 0x20 to 0x7e and none is
// a backslash.
func plainBytes(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// With no byte >= 0x80 (x&highs): a byte below 0x20 sets its high
		// bit in (x - 0x20*ones) &^ x, a byte 0x7f does in x + ones, and a
		// backslash is a zero byte of bs (exact tests, no carries).
		bs := x ^ ('\\' * ones)
		if (x|(x-0x20*ones)&^x|(x+ones)|(bs-ones)&^bs)&highs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
