package digesttag

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestSipHashVectors checks Sum against SipHash-2-4's published test
// vectors (key 00 01 … 0f, messages 00 01 … of each length): the 15-byte
// one from the SipHash paper's appendix A, and the empty message.
func TestSipHashVectors(t *testing.T) {
	k := Key{0x0706050403020100, 0x0f0e0d0c0b0a0908}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tc := range []struct {
		n    int
		want uint64
	}{{15, 0xa129ca6149be45e5}, {0, 0x726fdb47dd0e0e31}} {
		if got := k.Sum(msg[:tc.n]); got != tc.want {
			t.Errorf("%d bytes: %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

// TestSumHex: the hex form, in either case, tags as the raw digest does;
// anything that is not whole hex bytes of at most MaxLen is refused.
func TestSumHex(t *testing.T) {
	k := New()
	for _, n := range []int{16, 20, 32, 64} {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(i*37 + n)
		}
		h := hex.EncodeToString(d)
		for _, s := range []string{h, strings.ToUpper(h)} {
			if got, ok := k.SumHex(s); !ok || got != k.Sum(d) {
				t.Errorf("%d bytes %s: %#x %v, want %#x", n, s, got, ok, k.Sum(d))
			}
		}
	}
	for _, s := range []string{"abc", "zz", strings.Repeat("a", 2*MaxLen+2), "0g"} {
		if _, ok := k.SumHex(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
	if k.Sum([]byte{1}) == New().Sum([]byte{1}) {
		t.Error("two new keys tag alike")
	}
	s := strings.Repeat("ab", 32)
	if n := testing.AllocsPerRun(100, func() { k.SumHex(s) }); n != 0 {
		t.Errorf("SumHex allocates %v times", n)
	}
}

func BenchmarkSumHexSHA256(b *testing.B) {
	k := New()
	s := strings.Repeat("0123456789abcdef", 4)
	for b.Loop() {
		k.SumHex(s)
	}
}

func FuzzSumHex(f *testing.F) {
	k := New()
	f.Add("00ff")
	f.Add("ABCDEF0123")
	f.Add("x")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := k.SumHex(s)
		d, err := hex.DecodeString(s)
		if want := err == nil && len(d) <= MaxLen; ok != want {
			t.Fatalf("%q: ok %v, want %v", s, ok, want)
		}
		if ok && got != k.Sum(d) {
			t.Fatalf("%q: SumHex differs from Sum", s)
		}
	})
}
