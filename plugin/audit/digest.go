package audit

import "strings"

// DigestAlgo is a file digest algorithm that SplitDigest recognises.
type DigestAlgo uint8

// The algorithms an IMA hash= value may carry. sha224 and sha384 are kept
// although the local lists and VirusTotal do not use them.
const (
	NoDigest DigestAlgo = iota
	MD5
	SHA1
	SHA224
	SHA256
	SHA384
	SHA512
)

var digestNames = [...]string{"", "md5", "sha1", "sha224", "sha256", "sha384", "sha512"}

// digestHexLen is the length of each algorithm's digest in hex digits.
var digestHexLen = [...]int{0, 32, 40, 56, 64, 96, 128}

// String returns the lower-case algorithm name ("sha256"), or "" for NoDigest.
func (a DigestAlgo) String() string {
	if int(a) < len(digestNames) {
		return digestNames[a]
	}
	return ""
}

// Size returns the digest length in bytes (0 for NoDigest).
func (a DigestAlgo) Size() int {
	if int(a) < len(digestHexLen) {
		return digestHexLen[a] / 2
	}
	return 0
}

// SplitDigest is the one definition of a valid file digest in this module;
// the event summary (file.hash), the hashes enricher (hashes[]) and the
// blocklist loader all go through it.
//
// A valid digest is either
//
//   - "algo:hex", algo one of md5, sha1, sha224, sha256, sha384, sha512, and
//     hex exactly that algorithm's length (32, 40, 56, 64, 96, 128 digits), or
//   - a bare hex digest whose length gives the algorithm: 32 md5, 40 sha1,
//     64 sha256, 128 sha512 (the legacy form of old kernels; 56 and 96 are
//     not accepted bare, as no kernel wrote them so).
//
// The kernel writes the prefix and the hex in lower case. Upper case (in the
// prefix, in the hex, or mixed) is accepted too, because hash lists written
// by other tools (Windows' Get-FileHash, certutil, spreadsheets) use it and
// both sides must agree on one spelling: ParseDigest and the blocklist
// normalise to lower case. Nothing else is a digest: no surrounding white
// space, no other prefix, no other length. Callers that read files trim
// their own fields.
//
// SplitDigest returns the algorithm and the hex digits as they stand in s
// (either case; a sub-slice of s, no copy). It is pure, allocation-free and
// safe for concurrent use.
func SplitDigest[S ~string | ~[]byte](s S) (DigestAlgo, S, bool) {
	var zero S
	var algo DigestAlgo
	hex := s
	// The bare lengths are never the length of a prefixed form (36, 45,
	// 63, 71, 103, 135), so the length alone tells the two apart.
	switch len(s) {
	case 32:
		algo = MD5
	case 40:
		algo = SHA1
	case 64:
		algo = SHA256
	case 128:
		algo = SHA512
	default:
		i := colon(s)
		if i < 0 {
			return NoDigest, zero, false
		}
		algo = digestAlgoNamed(s[:i])
		hex = s[i+1:]
		if algo == NoDigest || len(hex) != digestHexLen[algo] {
			return NoDigest, zero, false
		}
	}
	for i := 0; i < len(hex); i++ {
		if !isHexDigit[hex[i]] {
			return NoDigest, zero, false
		}
	}
	return algo, hex, true
}

// isHexDigit holds 0-9, a-f and A-F.
var isHexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

// colon returns the index of the first ':' within the first 7 bytes of s
// ("sha512:" is the longest prefix), or -1.
func colon[S ~string | ~[]byte](s S) int {
	for i := 0; i < len(s) && i < 7; i++ {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

// digestAlgoNamed returns the algorithm called name in any case, or NoDigest.
func digestAlgoNamed[S ~string | ~[]byte](name S) DigestAlgo {
	for a := MD5; a <= SHA512; a++ {
		n := digestNames[a]
		if len(name) != len(n) {
			continue
		}
		i := 0
		for i < len(n) && lowerASCII(name[i]) == n[i] {
			i++
		}
		if i == len(n) {
			return a
		}
	}
	return NoDigest
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ParseDigest parses a digest as SplitDigest defines it and returns the
// lower-case algorithm name and hex digits (no allocation when s is already
// lower case). ok is false, and algo and hex empty, for anything else.
func ParseDigest(s string) (algo, hex string, ok bool) {
	a, h, ok := SplitDigest(s)
	if !ok {
		return "", "", false
	}
	return a.String(), strings.ToLower(h), true
}
