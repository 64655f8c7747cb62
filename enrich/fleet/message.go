// Package fleet shares VirusTotal verdicts across a fleet of hosts over
// Kafka: hosts produce sightings of hashes they have no verdict for to the
// sightings topic, one verdict service (the only holder of the VirusTotal
// key) looks each hash up at most once per TTL and produces Ed25519-signed
// verdicts to a compacted verdicts topic, which every host follows.
//
// This file holds the wire formats (docs/fleet.md describes them) and the
// signing. Encoders and decoders are pure functions, safe for concurrent use.
package fleet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
)

// Default topic names.
const (
	DefaultSightingsTopic = "audisp-enrich.hashes"
	DefaultVerdictsTopic  = "audisp-enrich.verdicts"
)

// formatVersion is the "v" of every message; decoders refuse other values.
const formatVersion = 1

// maxMessage bounds what the decoders accept (both formats are well under
// 1 KiB in practice).
const maxMessage = 16 << 10

// Sighting is the value of a sightings-topic message; the key is the
// digest (lower-case hex). A host produces one per hash it has no verdict
// for, at most once per hash per interval.
type Sighting struct {
	Algo      string `json:"algo"`       // sha256, sha1 or md5
	FirstSeen int64  `json:"first_seen"` // unix seconds the host first saw the hash
	Host      string `json:"host"`
	Path      string `json:"path,omitempty"`
	Count     int64  `json:"count"` // executions seen since the host's previous sighting of the hash
}

// Verdict sources: SourceVirusTotal, or a local source of the service,
// SourcePackage + the distribution ("package:debian") or SourceAllowlist +
// the list's name ("allowlist:corp").
const (
	SourceVirusTotal = "virustotal"
	SourcePackage    = "package:"
	SourceAllowlist  = "allowlist:"
)

// Verdict statuses (the same words as virustotal.StatusHit/StatusNotFound/
// StatusError/StatusSkipped). A skipped verdict comes from a local source;
// its Reason is virustotal.ReasonPackage or virustotal.ReasonAllowlisted.
const (
	VerdictFound    = "hit"
	VerdictNotFound = "not_found"
	VerdictError    = "error"
	VerdictSkipped  = "skipped"
)

// Verdict is the signed value of a verdicts-topic message; the key is the
// digest. LookedUp + TTL is when the verdict expires: hosts treat an
// expired verdict as unknown and sight the hash again.
type Verdict struct {
	Status          string `json:"status"` // hit | not_found | error | skipped
	Reason          string `json:"reason,omitempty"`
	Malicious       int64  `json:"malicious"`
	Suspicious      int64  `json:"suspicious"`
	Harmless        int64  `json:"harmless"`
	Undetected      int64  `json:"undetected"`
	Engines         int64  `json:"engines"` // engines that gave one of the four answers above
	Reputation      int64  `json:"reputation,omitempty"`
	ThreatLabel     string `json:"threat_label,omitempty"`
	MeaningfulName  string `json:"meaningful_name,omitempty"`
	FirstSubmission int64  `json:"first_submission,omitempty"` // unix seconds
	LastAnalysis    int64  `json:"last_analysis,omitempty"`    // unix seconds
	Link            string `json:"link,omitempty"`
	LookedUp        int64  `json:"looked_up"`   // unix seconds of the lookup
	TTL             int64  `json:"ttl_seconds"` // how long the verdict holds
	Source          string `json:"source"`      // virustotal | package:<distro> | allowlist:<name>
}

// Expires returns when v stops holding.
func (v *Verdict) Expires() time.Time { return time.Unix(v.LookedUp+v.TTL, 0) }

// envelope is the outer JSON of a verdict message: the verdict exactly as
// signed, and the signature.
type envelope struct {
	V       int             `json:"v"`
	Verdict json.RawMessage `json:"verdict"`
	Sig     string          `json:"sig"` // base64 (std) Ed25519 signature
}

// sightingWire adds the version to Sighting.
type sightingWire struct {
	V int `json:"v"`
	Sighting
}

// Decoding errors. Callers count them by kind.
var (
	ErrBadKey       = errors.New("fleet: key is not a lower-case hex md5, sha1 or sha256")
	ErrMalformed    = errors.New("fleet: malformed message")
	ErrUnsigned     = errors.New("fleet: verdict is not signed")
	ErrBadSignature = errors.New("fleet: verdict signature does not verify")
)

// EncodeSighting returns the value of a sighting message.
func EncodeSighting(s Sighting) []byte {
	b, _ := json.Marshal(sightingWire{V: formatVersion, Sighting: s}) // plain data: cannot fail
	return b
}

// DecodeSighting checks a sighting message's key and decodes its value.
// Errors wrap ErrBadKey or ErrMalformed.
func DecodeSighting(key, value []byte) (Sighting, error) {
	if !validDigest(key) {
		return Sighting{}, ErrBadKey
	}
	var w sightingWire
	if err := strictJSON(value, &w); err != nil {
		return Sighting{}, err
	}
	if w.V != formatVersion {
		return Sighting{}, fmt.Errorf("%w: version %d", ErrMalformed, w.V)
	}
	if algoLen[w.Algo] != len(key) {
		return Sighting{}, fmt.Errorf("%w: algo %q does not fit a %d-digit key", ErrMalformed, w.Algo, len(key))
	}
	if w.Count < 0 {
		return Sighting{}, fmt.Errorf("%w: negative count", ErrMalformed)
	}
	return w.Sighting, nil
}

var algoLen = map[string]int{"md5": 32, "sha1": 40, "sha256": 64}

// sigContext separates verdict signatures from any other use of the key.
const sigContext = "audisp-enrich fleet verdict v1\x00"

func signedBytes(key, verdict []byte) []byte {
	b := make([]byte, 0, len(sigContext)+len(key)+1+len(verdict))
	b = append(b, sigContext...)
	b = append(b, key...)
	b = append(b, 0)
	return append(b, verdict...)
}

// EncodeVerdict returns the signed value of a verdict message for digest
// key. The signature covers the key, so a verdict cannot be replayed under
// another hash.
func EncodeVerdict(key string, v Verdict, priv ed25519.PrivateKey) []byte {
	raw, _ := json.Marshal(v) // plain data: cannot fail
	sig := ed25519.Sign(priv, signedBytes([]byte(key), raw))
	b, _ := json.Marshal(envelope{V: formatVersion, Verdict: raw, Sig: base64.StdEncoding.EncodeToString(sig)})
	return b
}

// DecodeVerdict checks key, verifies the signature with pub and decodes
// the verdict. Errors wrap ErrBadKey, ErrMalformed, ErrUnsigned or
// ErrBadSignature; nothing from an unverified value is returned. A nil
// value (a compaction tombstone) is not a verdict: callers test for it
// before decoding.
func DecodeVerdict(key, value []byte, pub ed25519.PublicKey) (Verdict, error) {
	if !validDigest(key) {
		return Verdict{}, ErrBadKey
	}
	var env envelope
	if err := strictJSON(value, &env); err != nil {
		return Verdict{}, err
	}
	if env.V != formatVersion {
		return Verdict{}, fmt.Errorf("%w: version %d", ErrMalformed, env.V)
	}
	if env.Sig == "" {
		return Verdict{}, ErrUnsigned
	}
	sig, err := base64.StdEncoding.DecodeString(env.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Verdict{}, ErrBadSignature
	}
	if !ed25519.Verify(pub, signedBytes(key, env.Verdict), sig) {
		return Verdict{}, ErrBadSignature
	}
	var v Verdict
	if err := strictJSON(env.Verdict, &v); err != nil {
		return Verdict{}, err
	}
	switch {
	case v.Status == VerdictFound, v.Status == VerdictNotFound, v.Status == VerdictError:
	case v.Status == VerdictSkipped && (v.Reason == virustotal.ReasonPackage || v.Reason == virustotal.ReasonAllowlisted):
	default:
		return Verdict{}, fmt.Errorf("%w: status %q", ErrMalformed, v.Status)
	}
	if v.TTL <= 0 || v.Source == "" {
		return Verdict{}, fmt.Errorf("%w: ttl_seconds and source are required", ErrMalformed)
	}
	return v, nil
}

// strictJSON decodes one JSON object, refusing unknown fields, trailing
// data and values over maxMessage.
func strictJSON(b []byte, v any) error {
	if len(b) > maxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d.More() {
		return fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return nil
}

// validDigest reports whether k is a lower-case hex md5, sha1 or sha256.
func validDigest(k []byte) bool {
	switch len(k) {
	case 32, 40, 64:
	default:
		return false
	}
	for _, c := range k {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParsePublicKey decodes a base64 Ed25519 public key (32 bytes), as
// written by GenerateKey and set in the hosts' verdict_public_key. It
// refuses bytes that are not a point of the curve and points of small
// order (the identity, all zeros, and the other six): signatures made
// without any private key verify under those.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("fleet: verdict_public_key: want the base64 of 32 bytes")
	}
	switch onCurve, small := checkPoint(b); {
	case !onCurve:
		return nil, errors.New("fleet: verdict_public_key: not an Ed25519 public key (not a point of the curve)")
	case small:
		return nil, errors.New("fleet: verdict_public_key: a point of small order (a placeholder such as all zeros?), under which anyone can forge verdicts; use the key verdicts keygen printed")
	}
	return ed25519.PublicKey(b), nil
}

// checkPoint reports whether the encoded Edwards point b (y little-endian,
// the top bit x's sign) is on edwards25519, and whether it is of small
// order. The curve equation -x² + y² = 1 + d·x²·y² gives x² = (y²-1) /
// (d·y²+1), which must be a square mod p = 2^255-19. The order test maps
// the point to its Montgomery u = (1+y)/(1-y) and runs X25519 on it: a
// clamped scalar is a multiple of the cofactor 8, so the result is all
// zeros (crypto/ecdh's error) exactly for points of small order. Only for
// configuration (math/big).
func checkPoint(b []byte) (onCurve, small bool) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	be := make([]byte, 32)
	for i := range be {
		be[i] = b[31-i]
	}
	be[0] &= 0x7f
	y := new(big.Int).Mod(new(big.Int).SetBytes(be), p)
	one := big.NewInt(1)
	mod := func(x *big.Int) *big.Int { return x.Mod(x, p) }
	inv := func(x *big.Int) *big.Int { return new(big.Int).ModInverse(x, p) }
	d := mod(new(big.Int).Mul(big.NewInt(-121665), inv(big.NewInt(121666))))
	y2 := mod(new(big.Int).Mul(y, y))
	num := mod(new(big.Int).Sub(y2, one))
	den := mod(new(big.Int).Add(new(big.Int).Mul(d, y2), one))
	x2 := mod(new(big.Int).Mul(num, inv(den))) // den is never 0: -1/d is not a square
	if x2.Sign() != 0 && big.Jacobi(x2, p) != 1 {
		return false, false
	}
	den = mod(new(big.Int).Sub(one, y))
	if den.Sign() == 0 {
		return true, true // y = 1: the identity
	}
	u := mod(new(big.Int).Mul(new(big.Int).Add(one, y), inv(den)))
	ub := u.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		ub[i], ub[j] = ub[j], ub[i]
	}
	pub, err := ecdh.X25519().NewPublicKey(ub)
	if err != nil {
		return true, true
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return true, true
	}
	_, err = priv.ECDH(pub)
	return true, err != nil
}

// ReadPrivateKey reads the service's signing key: a file holding the
// base64 of a 32-byte Ed25519 seed. Like the VirusTotal key file, a group-
// or world-accessible file is refused.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: signing key: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("fleet: signing key %s: want a regular file of mode 0600 or stricter (mode %04o)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("fleet: signing key %s: want the base64 of a 32-byte Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// GenerateKey writes a new signing key to path (mode 0600, refusing to
// overwrite) and returns the base64 public key for the hosts' config.
func GenerateKey(path string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("fleet: signing key: %w", err)
	}
	_, err = fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv.Seed()))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("fleet: signing key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}
