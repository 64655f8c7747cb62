package hashes

import "strings"

// digestLen maps the algorithms ParseHash accepts with a prefix to their
// digest length in hex characters. IMA can also use sha224 and sha384; they
// are accepted so the digest is kept, although the lists rarely carry them.
var digestLen = map[string]int{
	"md5":    32,
	"sha1":   40,
	"sha224": 56,
	"sha256": 64,
	"sha384": 96,
	"sha512": 128,
}

// ParseHash parses an IMA hash value: "algo:hex" (md5, sha1, sha224,
// sha256, sha384, sha512; the prefix in any case) or a bare hex digest whose
// length gives the algorithm (32 md5, 40 sha1, 64 sha256, 128 sha512), as
// old kernels log it. Surrounding spaces are ignored. The digest must be hex
// of exactly the algorithm's length; it is returned in lower case. ok is
// false for anything else, and algo and hex are then empty. ParseHash is
// pure and safe for concurrent use.
func ParseHash(v string) (algo, hex string, ok bool) {
	v = strings.TrimSpace(v)
	digest := v
	if i := strings.IndexByte(v, ':'); i >= 0 {
		algo = strings.ToLower(v[:i])
		digest = v[i+1:]
		if digestLen[algo] != len(digest) {
			return "", "", false
		}
	} else {
		switch len(v) {
		case 32:
			algo = "md5"
		case 40:
			algo = "sha1"
		case 64:
			algo = "sha256"
		case 128:
			algo = "sha512"
		default:
			return "", "", false
		}
	}
	lower := true
	for i := 0; i < len(digest); i++ {
		c := digest[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			lower = false
		default:
			return "", "", false
		}
	}
	if !lower {
		digest = strings.ToLower(digest)
	}
	return algo, digest, true
}
