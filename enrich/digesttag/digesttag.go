// Package digesttag gives file digests 64-bit tags under a secret key, for
// tables that keep 8 bytes of a digest instead of all of it. A tag is
// SipHash-2-4 (a pseudorandom function with a 128-bit key) of the raw
// digest, so whoever does not know the key cannot aim a file at another
// file's tag: any digest other than a listed one matches some listed tag
// with probability about n/2^64 for n listed digests, however the digest
// was chosen. A raw prefix of the digest gives no such bound: a file can
// be crafted to share its first 8 bytes with a listed digest in about
// 2^64/n tries. Keys are drawn per process and never leave it; tags are
// not stored.
package digesttag

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// MaxLen is the longest digest Sum and SumHex take, in bytes (SHA-512).
const MaxLen = 64

// Key is a secret tag key. The zero Key is valid but not secret: use New.
// A Key is a value; it is safe for concurrent use.
type Key struct{ k0, k1 uint64 }

// New returns a key drawn from crypto/rand.
func New() Key {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return Key{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

// Sum returns the tag of the raw digest d. It does not allocate.
func (k Key) Sum(d []byte) uint64 {
	v0, v1 := k.k0^0x736f6d6570736575, k.k1^0x646f72616e646f6d
	v2, v3 := k.k0^0x6c7967656e657261, k.k1^0x7465646279746573
	last := uint64(len(d)) << 56
	for ; len(d) >= 8; d = d[8:] {
		m := binary.LittleEndian.Uint64(d)
		v3 ^= m
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
		v0 ^= m
	}
	for i, c := range d {
		last |= uint64(c) << (8 * i)
	}
	v3 ^= last
	v0, v1, v2, v3 = round(v0, v1, v2, v3)
	v0, v1, v2, v3 = round(v0, v1, v2, v3)
	v0 ^= last
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// round is one SipRound.
func round(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// SumHex returns the tag of the digest written in hex (either case), and
// false when s is not an even number of hex digits, at most 2*MaxLen. It
// does not allocate. SumHex(hex(d)) == Sum(d).
func (k Key) SumHex(s string) (uint64, bool) {
	var b [MaxLen]byte
	n, ok := Decode(b[:], s)
	if !ok {
		return 0, false
	}
	return k.Sum(b[:n]), true
}

// Decode writes the bytes of the hex digits s (either case) to dst and
// returns how many, or false when s is not an even number of hex digits
// or dst is too short. It does not allocate.
func Decode[S ~string | ~[]byte](dst []byte, s S) (int, bool) {
	if len(s)%2 != 0 || len(s) > 2*len(dst) {
		return 0, false
	}
	for i := range len(s) / 2 {
		hi, lo := unhex[s[2*i]], unhex[s[2*i+1]]
		if hi|lo > 0xf {
			return 0, false
		}
		dst[i] = hi<<4 | lo
	}
	return len(s) / 2, true
}

// unhex maps a hex digit of either case to its value, anything else to 0xff.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()
