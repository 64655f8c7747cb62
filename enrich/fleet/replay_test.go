package fleet

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// readResult is a follower's count of verdict messages with a result.
func readResult(reg *metrics.Registry, result string) uint64 {
	return reg.Counter("audisp_enrich_fleet_verdicts_read_total", metrics.Label("result", result), "").Value()
}

// reach waits until f has read what the verdicts topic holds now.
func reach(t *testing.T, f *follower) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.reach(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReplayedOlderVerdictIgnored: a validly signed verdict produced again
// after a newer one for the same hash (a replay from the topic's history)
// changes nothing on a running host, on a host started after it, or in
// the service, which counts it as stale and produces its newer verdict
// again so that it stays the key's last value after compaction.
func TestReplayedOlderVerdictIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker, the service and 2 hosts; skipped under -short")
	}
	w := newWorld(t)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	h1 := hashN(501)
	now := time.Now().Unix()
	oldClean := Verdict{Status: VerdictFound, Harmless: 70, Engines: 70, LookedUp: now - 3*86400, TTL: 7 * 86400, Source: SourceVirusTotal}
	newBad := Verdict{Status: VerdictFound, Malicious: 40, Undetected: 30, Engines: 70, LookedUp: now, TTL: 30 * 86400, Source: SourceVirusTotal}
	oldMsg := EncodeVerdict(h1, oldClean, w.priv)
	w.produce(DefaultVerdictsTopic, &kgo.Record{Key: []byte(h1), Value: oldMsg},
		&kgo.Record{Key: []byte(h1), Value: EncodeVerdict(h1, newBad, w.priv)})
	s, sreg, _ := w.startService(t.TempDir())
	reach(t, s.fol)
	host := w.startHost("victim")
	malicious := func(h *simHost, serial uint32) int64 {
		t.Helper()
		r := h.enrich(t, serial, h1)
		if r.VTVerdict == nil {
			t.Fatalf("%s: %s got %+v, want a hit", h.name, h1[:8], r)
		}
		return r.VTVerdict.Malicious
	}
	if m := malicious(host, 1); m != 40 {
		t.Fatalf("before the replay: malicious=%d, want 40", m)
	}

	w.produce(DefaultVerdictsTopic, &kgo.Record{Key: []byte(h1), Value: oldMsg})
	reach(t, host.h.fol)
	if m := malicious(host, 2); m != 40 {
		t.Errorf("running host after the replay: malicious=%d, want 40", m)
	}
	if n := readResult(host.reg, "stale"); n != 1 {
		t.Errorf("running host counted %d stale verdicts, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for readResult(sreg, "stale") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := readResult(sreg, "stale"); n != 1 {
		t.Fatalf("service counted %d stale verdicts, want 1", n)
	}
	// The service produces its newer verdict again, after the replay: the
	// key's last value on the service's partition, whatever compaction keeps.
	for s.m.produced.Value() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.m.produced.Value(); n != 1 {
		t.Fatalf("the service produced %d verdicts after the replay, want 1 (its newer verdict again)", n)
	}
	fresh := w.startHost("fresh")
	if m := malicious(fresh, 3); m != 40 {
		t.Errorf("host started after the replay: malicious=%d, want 40", m)
	}
	if n := readResult(fresh.reg, "stale"); n == 0 { // 1 or 2: the partitions are read in no fixed order
		t.Errorf("host started after the replay counted no stale verdict")
	}
}

// TestTombstoneIgnored: a tombstone (null value) is not signed, so it
// removes nothing: the running host keeps the verdict, host and service
// count it as unsigned, and the service produces the verdict again so
// that compaction, which drops the values before a tombstone, keeps it.
func TestTombstoneIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker, the service and 2 hosts; skipped under -short")
	}
	w := newWorld(t)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	h2 := hashN(502)
	bad := Verdict{Status: VerdictFound, Malicious: 40, Undetected: 30, Engines: 70, LookedUp: time.Now().Unix(), TTL: 30 * 86400, Source: SourceVirusTotal}
	w.produce(DefaultVerdictsTopic, &kgo.Record{Key: []byte(h2), Value: EncodeVerdict(h2, bad, w.priv)})
	s, sreg, _ := w.startService(t.TempDir())
	reach(t, s.fol)
	host := w.startHost("victim")
	if r := host.enrich(t, 1, h2); r.Status != VerdictFound {
		t.Fatalf("before the tombstone: %+v, want a hit", r)
	}
	w.produce(DefaultVerdictsTopic, &kgo.Record{Key: []byte(h2), Value: nil})
	reach(t, host.h.fol)
	if r := host.enrich(t, 2, h2); r.Status != VerdictFound {
		t.Errorf("after the tombstone: %+v, want the hit kept", r)
	}
	if n := readResult(host.reg, "unsigned"); n != 1 {
		t.Errorf("host counted %d unsigned verdicts, want 1 (the tombstone)", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.m.produced.Value() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n, u := s.m.produced.Value(), readResult(sreg, "unsigned"); n != 1 || u != 1 {
		t.Fatalf("the service counted %d unsigned and produced %d verdicts after the tombstone, want 1 and 1", u, n)
	}
	if r := w.startHost("fresh").enrich(t, 3, h2); r.Status != VerdictFound {
		t.Errorf("host started after the tombstone: %+v, want a hit", r)
	}
}

// TestSightingWeightIsDistinctHosts: a hash's queue priority counts the
// distinct hosts that sighted it, not the counts they claim, so one host
// sighting hashes with a huge count cannot evict the hashes the fleet
// queued (found by review: count 2^40 from one host dropped 4 of the 5).
func TestSightingWeightIsDistinctHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker and the service; skipped under -short")
	}
	w := newWorld(t)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	vc := w.vtConfig(t.TempDir())
	vc.QueueSize, vc.PerMinute = 5, 1
	reg := &metrics.Registry{}
	s, err := NewService(w.serviceConfig(), vc, w.local, quietLog(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.Close() }()
	go s.Run(ctx)
	handled := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var n uint64
			for _, r := range sightingResults {
				n += reg.Counter("audisp_enrich_fleet_sightings_total", metrics.Label("result", r), "").Value()
			}
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sightings handled, want %d", n, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// No lookups, so that the queue is what the weights make it: the
	// first 5 of the 6 fleet hashes fill it, each with one weight per host.
	for deadline := time.Now().Add(15 * time.Second); s.owned.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the service claimed no sightings partition within 15 s")
		}
	}
	time.Sleep(200 * time.Millisecond) // Setup resumes lookups after it claimed them
	s.vt.Hold()
	fleetHashes := map[string]bool{}
	var recs []*kgo.Record
	for i := range 6 {
		h := hashN(700 + i)
		fleetHashes[h] = true
		w.fake.Set(h, vtfake.FileReply(h, 0))
		for j := range 20 {
			recs = append(recs, sightingRecord(h, fmt.Sprintf("host%02d", j)))
			recs = append(recs, sightingRecord(h, fmt.Sprintf("host%02d", j))) // a repeat adds nothing
		}
	}
	w.produce(DefaultSightingsTopic, recs...)
	handled(240)
	var rogue []*kgo.Record
	for i := range 5 {
		for range 3 {
			r := sightingRecord(hashN(900+i), "rogue")
			sg, err := DecodeSighting(r.Key, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			sg.Count = 1 << 40
			r.Value = EncodeSighting(sg)
			rogue = append(rogue, r)
		}
	}
	w.produce(DefaultSightingsTopic, rogue...)
	handled(255)
	queued := s.vt.Withdraw()
	if len(queued) != 5 {
		t.Fatalf("%d hashes queued, want 5: %+v", len(queued), queued)
	}
	for _, q := range queued {
		if !fleetHashes[q.File.Hex] || q.Weight != 20 {
			t.Errorf("queued %s with weight %d, want only the fleet's hashes, with weight 20 (one per host)", q.File.Hex[48:], q.Weight)
		}
	}
}

// newKey generates a signing key: its public key as the config has it,
// and the private key.
func newKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "k")
	pub, err := GenerateKey(f)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ReadPrivateKey(f)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestKeyRotation: a host takes verdicts signed by a key of
// next_verdict_public_keys (a rotation's overlap), ignores those signed by
// a retired key and counts them as old_key, apart from bad_signature,
// which stays the count of verdicts no known key signed (review item 14:
// old-key verdicts kept the forgery alarm up for good).
func TestKeyRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker; skipped under -short")
	}
	w := newWorld(t)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	nextPub, next := newKey(t)
	oldPub, old := newKey(t)
	_, stranger := newKey(t)
	v := Verdict{Status: VerdictFound, Harmless: 70, Engines: 70, LookedUp: time.Now().Unix(), TTL: 86400, Source: SourceVirusTotal}
	hNext, hOld, hStranger := hashN(601), hashN(602), hashN(603)
	w.produce(DefaultVerdictsTopic,
		&kgo.Record{Key: []byte(hNext), Value: EncodeVerdict(hNext, v, next)},
		&kgo.Record{Key: []byte(hOld), Value: EncodeVerdict(hOld, v, old)},
		&kgo.Record{Key: []byte(hStranger), Value: EncodeVerdict(hStranger, v, stranger)})
	hc := DefaultHostConfig()
	hc.Conn = w.conn()
	hc.VerdictPublicKey = base64.StdEncoding.EncodeToString(w.pub)
	hc.NextVerdictPublicKeys = []string{nextPub}
	hc.RetiredVerdictPublicKeys = []string{oldPub}
	hc.HostName = "rotating"
	if err := hc.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &simHost{name: "rotating", reg: &metrics.Registry{}, out: &docs{got: map[string]*audit.Event{}}}
	h, err := NewHost(hc, s.out, quietLog(), s.reg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s.h = h
	select {
	case <-h.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the host did not read the verdicts topic within 10 s")
	}
	if r := s.enrich(t, 1, hNext); r.Status != VerdictFound {
		t.Errorf("verdict signed by the next key: %+v, want a hit", r)
	}
	for _, hh := range []string{hOld, hStranger} {
		if r := s.enrich(t, 2, hh); r.Status != virustotal.StatusPending {
			t.Errorf("%s: %+v, want pending", hh[56:], r)
		}
	}
	for result, want := range map[string]uint64{"ok": 1, "old_key": 1, "bad_signature": 1} {
		if n := readResult(s.reg, result); n != want {
			t.Errorf("result=%s: %d, want %d", result, n, want)
		}
	}
	hc.RetiredVerdictPublicKeys = []string{base64.StdEncoding.EncodeToString(make([]byte, 32))}
	if err := hc.Validate(); err == nil || !strings.Contains(err.Error(), "retired_verdict_public_keys[0]") {
		t.Errorf("an all-zero retired key: %v, want an error naming retired_verdict_public_keys[0]", err)
	}
}

// TestServiceRetiredKey: after a key rotation the service's own follower,
// given the old key in retired_verdict_public_keys, counts the old-key
// verdicts still on the topic as old_key, and only the verdicts no known
// key signed as bad_signature (found by review: the service raised the
// forgery alarm for every old-key verdict after the documented rotation).
func TestServiceRetiredKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker and the service; skipped under -short")
	}
	w := newWorld(t)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	oldPub, old := newKey(t)
	_, stranger := newKey(t)
	v := Verdict{Status: VerdictFound, Harmless: 70, Engines: 70, LookedUp: time.Now().Unix(), TTL: 86400, Source: SourceVirusTotal}
	hCur, hOld, hStranger := hashN(701), hashN(702), hashN(703)
	w.produce(DefaultVerdictsTopic,
		&kgo.Record{Key: []byte(hCur), Value: EncodeVerdict(hCur, v, w.priv)},
		&kgo.Record{Key: []byte(hOld), Value: EncodeVerdict(hOld, v, old)},
		&kgo.Record{Key: []byte(hStranger), Value: EncodeVerdict(hStranger, v, stranger)})
	sc := w.serviceConfig()
	sc.RetiredVerdictPublicKeys = []string{oldPub}
	reg := &metrics.Registry{}
	s, err := NewService(sc, w.vtConfig(t.TempDir()), w.local, quietLog(), reg) // returns once the topic is read
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for result, want := range map[string]uint64{"ok": 1, "old_key": 1, "bad_signature": 1} {
		if n := readResult(reg, result); n != want {
			t.Errorf("result=%s: %d, want %d", result, n, want)
		}
	}
	sc.RetiredVerdictPublicKeys = []string{base64.StdEncoding.EncodeToString(make([]byte, 32))}
	if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), "retired_verdict_public_keys[0]") {
		t.Errorf("an all-zero retired key: %v, want an error naming retired_verdict_public_keys[0]", err)
	}
}
