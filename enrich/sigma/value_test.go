package sigma

import (
	"strings"
	"testing"
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
