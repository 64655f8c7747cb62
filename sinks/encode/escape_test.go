package encode

import (
	"math/rand/v2"
	"testing"
)

func needsEscapeByte(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x7f }

// escape8 must agree with the byte test for every byte value in every
// position, and for random words.
func TestEscape8(t *testing.T) {
	for pos := 0; pos < 8; pos++ {
		for v := 0; v < 256; v++ {
			w := []byte("abcdefgh")
			w[pos] = byte(v)
			x := load8(string(w), 0)
			if got, want := escape8(x), needsEscapeByte(byte(v)); got != want {
				t.Fatalf("byte %#x at %d: escape8 %v, want %v", v, pos, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var w [8]byte
		want := false
		for i := range w {
			w[i] = byte(r.IntN(256))
			if r.IntN(4) > 0 {
				w[i] = byte(0x20 + r.IntN(0x5f)) // mostly printable
			}
			want = want || needsEscapeByte(w[i])
		}
		if got := escape8(load8(string(w[:]), 0)); got != want {
			t.Fatalf("%q: escape8 %v, want %v", w, got, want)
		}
	}
}

// The word-at-a-time scan writes what a byte loop writes.
func TestAppendStrBodyASCIIChunks(t *testing.T) {
	for _, s := range []string{"", "a", "abcdefgh", "abcdefghi", "abc\"defghijklmnop", "0123456\\789abcdefgh\x01", "/usr/bin/ls -la /tmp/a b", "abcdefg\x7f", "abcdefgh\xc3\xa9"} {
		got, ok := appendStrBodyASCII(nil, s)
		var want []byte
		wantOK := true
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				wantOK = false
				break
			}
			if needsEscapeByte(s[i]) {
				want = appendByte(want, s[i])
			} else {
				want = append(want, s[i])
			}
		}
		if ok != wantOK || (ok && string(got) != string(want)) {
			t.Errorf("%q: got %q %v, want %q %v", s, got, ok, want, wantOK)
		}
	}
}
