package fleet

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const digest = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

func testKeys(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func sampleVerdict() Verdict {
	return Verdict{Status: VerdictFound, Malicious: 3, Harmless: 1, Undetected: 60, Engines: 64,
		ThreatLabel: "trojan.eicar", MeaningfulName: "eicar.com", FirstSubmission: 1600000000,
		LookedUp: 1700000000, TTL: 86400, Source: SourceVirusTotal}
}

func TestSightingRoundTrip(t *testing.T) {
	s := Sighting{Algo: "sha256", FirstSeen: 1700000000, Host: "web1", Path: "/usr/bin/x", Count: 7}
	got, err := DecodeSighting([]byte(digest), EncodeSighting(s))
	if err != nil || got != s {
		t.Fatalf("got %+v, %v; want %+v", got, err, s)
	}
	for _, c := range []struct{ key, val string }{
		{"ABC", `{"v":1,"algo":"sha256"}`},
		{digest, `{"v":2,"algo":"sha256","first_seen":1,"host":"h","count":1}`},
		{digest, `{"v":1,"algo":"md5","first_seen":1,"host":"h","count":1}`},
		{digest, `{"v":1,"algo":"sha256","first_seen":1,"host":"h","count":-1}`},
		{digest, `{"v":1,"algo":"sha256","first_seen":1,"host":"h","count":1,"extra":1}`},
		{digest, `{"v":1,"algo":"sha256","first_seen":1,"host":"h","count":1} {}`},
	} {
		if _, err := DecodeSighting([]byte(c.key), []byte(c.val)); err == nil {
			t.Errorf("DecodeSighting(%q, %q) accepted", c.key, c.val)
		}
	}
}

func TestVerdictSignature(t *testing.T) {
	pub, priv := testKeys(t)
	v := sampleVerdict()
	msg := EncodeVerdict(digest, v, priv)
	got, err := DecodeVerdict([]byte(digest), msg, pub)
	if err != nil || got != v {
		t.Fatalf("got %+v, %v; want %+v", got, err, v)
	}
	other := strings.Repeat("a", 64)
	if _, err := DecodeVerdict([]byte(other), msg, pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("replayed under another key: %v, want ErrBadSignature", err)
	}
	otherPub, _ := testKeys(t)
	if _, err := DecodeVerdict([]byte(digest), msg, otherPub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another service's key: %v, want ErrBadSignature", err)
	}
	tampered := strings.Replace(string(msg), `"malicious":3`, `"malicious":0`, 1)
	if _, err := DecodeVerdict([]byte(digest), []byte(tampered), pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered: %v, want ErrBadSignature", err)
	}
	unsigned := `{"v":1,"verdict":{"status":"hit","malicious":0,"suspicious":0,"harmless":70,"undetected":0,"engines":70,"looked_up":1,"ttl_seconds":99999999,"source":"virustotal"},"sig":""}`
	if _, err := DecodeVerdict([]byte(digest), []byte(unsigned), pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: %v, want ErrUnsigned", err)
	}
	if _, err := DecodeVerdict([]byte("x"), msg, pub); !errors.Is(err, ErrBadKey) {
		t.Errorf("bad key: %v, want ErrBadKey", err)
	}
	if _, err := DecodeVerdict([]byte(digest), []byte("not json"), pub); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v, want ErrMalformed", err)
	}
}

func TestKeyFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	pubText, err := GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(path); err == nil {
		t.Error("GenerateKey overwrote an existing key")
	}
	priv, err := ReadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeVerdict([]byte(digest), EncodeVerdict(digest, sampleVerdict(), priv), pub); err != nil {
		t.Fatalf("a verdict signed with the file's key does not verify with its public key: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKey(path); err == nil {
		t.Error("a group-readable signing key was accepted")
	}
	if _, err := ParsePublicKey(base64.StdEncoding.EncodeToString([]byte("short"))); err == nil {
		t.Error("a 5-byte public key was accepted")
	}
}

// TestSmallOrderKeyRefused: public keys that are points of small order
// (placeholders under which anyone forges verdicts without a private key,
// found by review: 15 of 64 forgeries verified under all zeros) or no
// point at all are refused; real keys are taken. The small-order points
// tried: y = 0 (all zeros, order 4) with either sign of x, the identity
// (y = 1) also written non-canonically (y = p+1), and y = -1 (order 2).
func TestSmallOrderKeyRefused(t *testing.T) {
	enc := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	le := func(first byte, last byte) []byte { // first byte, 0xff between, last byte
		b := make([]byte, 32)
		for i := range b {
			b[i] = 0xff
		}
		b[0], b[31] = first, last
		return b
	}
	zeroNeg := make([]byte, 32)
	zeroNeg[31] = 0x80
	identity := make([]byte, 32)
	identity[0] = 1
	for _, k := range [][]byte{make([]byte, 32), zeroNeg, identity, le(0xee, 0x7f), le(0xec, 0x7f)} {
		if _, err := ParsePublicKey(enc(k)); err == nil || !strings.Contains(err.Error(), "small order") {
			t.Errorf("%x: %v, want a small-order error", k, err)
		}
	}
	notOnCurve := append([]byte{2}, make([]byte, 31)...) // y = 2 is no point of the curve
	if _, err := ParsePublicKey(enc(notOnCurve)); err == nil || !strings.Contains(err.Error(), "not a point") {
		t.Errorf("y = 2: %v, want not a point of the curve", err)
	}
	for range 20 {
		pubText, err := GenerateKey(filepath.Join(t.TempDir(), "k"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePublicKey(pubText); err != nil {
			t.Errorf("a real key %s refused: %v", pubText, err)
		}
	}
	// The example key of the docs and example.toml is a real point.
	if _, err := ParsePublicKey("nI3zfmZw1JMAAEXys0HQzEVysiyQwjSLlYtjotM8L+U="); err != nil {
		t.Errorf("the documented example key: %v", err)
	}
}
