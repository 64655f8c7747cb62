package syslog

import (
	"math/rand/v2"
	"testing"
)

// plainRun agrees with a byte-by-byte scan in both modes, whatever byte
// stops the run and wherever it stands.
func TestPlainRun(t *testing.T) {
	naive := func(msg []byte, strict bool) int {
		i := 0
		for i < len(msg) && !mustEscape(msg[i], strict) {
			i++
		}
		return i
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, strict := range []bool{false, true} {
		for n := 0; n < 40; n++ {
			for pos := 0; pos <= n; pos++ {
				for _, c := range []byte{0, '\t', '\n', 0x1f, 0x20, 0x7f, 0x80, 0xff, 'a'} {
					msg := make([]byte, n)
					for i := range msg {
						msg[i] = byte(0x20 + r.IntN(0x5f))
					}
					if pos < n {
						msg[pos] = c
					}
					if got, want := plainRun(msg, strict), naive(msg, strict); got != want {
						t.Fatalf("strict=%v %q: plainRun %d, want %d", strict, msg, got, want)
					}
				}
			}
		}
	}
}
