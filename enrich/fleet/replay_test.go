package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
