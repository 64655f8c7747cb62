package fleet

import (
	"crypto/ed25519"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fuzzSeed is a fixed seed, so the fuzz corpus holds verdicts that verify.
var fuzzSeed = make([]byte, ed25519.SeedSize)

func FuzzDecodeVerdict(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(fuzzSeed)
	pub := priv.Public().(ed25519.PublicKey)
	f.Add([]byte(digest), EncodeVerdict(digest, sampleVerdict(), priv))
	f.Add([]byte(digest), []byte(`{"v":1,"verdict":{"status":"hit"},"sig":""}`))
	f.Add([]byte("0123"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		v, err := DecodeVerdict(key, value, pub)
		if err != nil {
			return
		}
		// Whatever decodes was signed by priv: re-encoding it verifies.
		if _, err := DecodeVerdict(key, EncodeVerdict(string(key), v, priv), pub); err != nil {
			t.Fatalf("re-encoded verdict does not verify: %v", err)
		}
	})
}

func FuzzDecodeSighting(f *testing.F) {
	f.Add([]byte(digest), EncodeSighting(Sighting{Algo: "sha256", FirstSeen: 1, Host: "h", Path: "/bin/sh", Count: 2}))
	f.Add([]byte(digest[:32]), []byte(`{"v":1,"algo":"md5","first_seen":0,"host":"","count":0}`))
	f.Add([]byte("zz"), []byte(`[]`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		s, err := DecodeSighting(key, value)
		if err != nil {
			return
		}
		if s2, err := DecodeSighting(key, EncodeSighting(s)); err != nil || s2 != s {
			t.Fatalf("round trip: %+v, %v; want %+v", s2, err, s)
		}
	})
}

func FuzzParseOSReleaseID(f *testing.F) {
	f.Add([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n"))
	f.Add([]byte("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"))
	f.Add([]byte("ID='opensuse-leap'\n"))
	f.Add([]byte("ID=\"\nID=Bad Value\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id := parseOSReleaseID(b)
		if strings.TrimLeft(id, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
			t.Fatalf("ID %q has characters os-release(5) does not allow", id)
		}
	})
}

// FuzzDecodeRecord decodes fuzzed record bodies of the verdict cache's
// file: never a panic, and what decodes encodes to a body that decodes to
// the same rendering and expiry.
func FuzzDecodeRecord(f *testing.F) {
	now := time.Now().Unix()
	for i := range 4 {
		k, v := fleetVerdict(i*10, 100, 0, now)
		f.Add(encodeRecord(nil, k, &v, 77))
	}
	other := Verdict{Status: VerdictError, Reason: "http 503"}
	f.Add(encodeRecord(nil, digest, &other, 1))
	odd := Verdict{Status: VerdictFound, Malicious: -1, Reputation: 1 << 40, Link: "https://example.org/x"}
	f.Add(encodeRecord(nil, digest, &odd, maxExp))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, exp, err := decodeRecord(b, digest)
		if err != nil {
			return
		}
		v := Verdict{Status: r.Status, Reason: r.Reason}
		if d := r.VTVerdict; d != nil {
			v.Malicious, v.Suspicious, v.Harmless, v.Undetected, v.Reputation = d.Malicious, d.Suspicious, d.Harmless, d.Undetected, d.Reputation
			v.ThreatLabel, v.MeaningfulName, v.FirstSubmission, v.LastAnalysis, v.Link = d.ThreatLabel, d.MeaningfulName, d.FirstSubmission, d.LastAnalysis, d.Link
		}
		r2, exp2, err := decodeRecord(encodeRecord(nil, digest, &v, exp), digest)
		if err != nil || exp2 != exp || !reflect.DeepEqual(r2, r) {
			t.Fatalf("re-encoded: %+v %d %v; want %+v %d", r2, exp2, err, r, exp)
		}
	})
}
