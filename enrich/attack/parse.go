package attack

import (
	"slices"
	"strings"
)

// KeySeparator joins the keys of a rule that has several (-k a -k b): the
// kernel logs them as one key= value, hex-encoded, whose bytes are the keys
// separated by 0x01 (AUDIT_KEY_SEPARATOR).
const KeySeparator = '\x01'

// ParseKey returns the ATT&CK technique ids written in an audit rule key, in
// the order they appear, upper-cased and without repeats.
//
// An id is a T or t followed by four digits, optionally followed by a dot
// and three digits (a sub-technique), standing on its own: the characters
// on both sides, if any, are neither letters nor digits. So "T1548.001_12",
// "T1068_CVE_2021_3560", "Deobfuscate_T1140", "\tt1014_rootkit" and
// "T1059-test" all carry an id, "XT1059" and "T10590" do not, and
// "T1059.0042" yields the parent T1059. key may hold several keys joined by
// KeySeparator or white space.
//
// ParseKey only reads the syntax; it does not consult the catalog. Use
// Lookup to resolve an id (unknown ids, revoked ids) to a technique.
func ParseKey(key string) []string {
	var ids []string
	for i := 0; ; {
		start, end := scanID(key, i)
		if start < 0 {
			return ids
		}
		id := key[start:end]
		if id[0] == 't' {
			id = "T" + id[1:]
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		i = end
	}
}

// scanID finds the first technique id in s at or after byte offset from and
// returns its bounds, or -1, -1 when there is none. It does not allocate.
func scanID(s string, from int) (start, end int) {
	for i := from; i+5 <= len(s); i++ {
		j := strings.IndexAny(s[i:], "Tt")
		if j < 0 {
			break
		}
		i += j
		if i+5 > len(s) || (i > 0 && isAlnum(s[i-1])) || !digits(s[i+1:i+5]) {
			continue
		}
		end = i + 5
		if end < len(s) && isAlnum(s[end]) {
			continue
		}
		if end+4 <= len(s) && s[end] == '.' && digits(s[end+1:end+4]) &&
			(end+4 == len(s) || !isAlnum(s[end+4])) {
			end += 4
		}
		return i, end
	}
	return -1, -1
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
