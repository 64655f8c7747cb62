package sigma

import (
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestFoldLikeLower: equality, prefix and suffix give the same answer
// when they fold the text as they compare it (no lower-case form given)
// as on the lower-cased text, also for texts whose non-ASCII letters
// lower-case to another length (the Kelvin sign, 3 bytes, to k; İ, 2
// bytes, to i̇, 3): whether a condition's other values made the
// lower-case form first must not change its answer.
func TestFoldLikeLower(t *testing.T) {
	texts := []string{"kill", "KILL", "\u212Aill", "\u212AILL", "kil\u212A", "/bin/\u212Aill", "/BIN/KILL", "\u212A",
		"x\u0130", "\u0130stanbul", "ISTANBUL", "ki", "k", "\u00e9t\u00e9", "\u00c9T\u00c9"}
	pats := []string{"kill", "k", "/bin/kill", "ill", "i\u0307", "i\u0307stanbul", "istanbul", "\u00e9t\u00e9", "t\u00e9"}
	n := 0
	for _, o := range []op{opEq, opPrefix, opSuffix} {
		for _, p := range pats {
			v := value{op: o, s: p}
			for _, s := range texts {
				folded, lowered := v.match(s, ""), v.match(s, strings.ToLower(s))
				if folded != lowered {
					t.Errorf("op %d %q on %q: %v folding, %v on the lower-cased text", o, p, s, folded, lowered)
				}
				if lowered {
					n++
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d matches: the cases test little", n)
	}
}

// isASCII, which tests eight bytes at a time, agrees with a byte loop at
// every alignment and length, with one high byte at each position.
func TestIsASCIIByWords(t *testing.T) {
	for off := 0; off <= 8; off++ {
		for n := 0; off+n <= 88; n++ {
			for hi := -1; hi < n; hi++ {
				buf := []byte(strings.Repeat("a", 96))
				if hi >= 0 {
					buf[off+hi] = 0x80 | byte(hi)
				}
				b := buf[off : off+n]
				want := !slices.ContainsFunc(b, func(c byte) bool { return c >= 0x80 })
				// unsafe.String keeps the offset from the buffer's
				// (aligned) start, which a conversion would not.
				if got := isASCII(unsafe.String(unsafe.SliceData(b), n)); got != want {
					t.Fatalf("offset %d, length %d, high byte at %d: isASCII = %v", off, n, hi, got)
				}
			}
		}
	}
}
