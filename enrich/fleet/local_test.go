package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/blocklist"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// TestLocalVerdictSources: a service whose config has the package index
// (this machine's real dpkg database, limited to /usr/bin/env) and an allow
// list publishes signed verdicts with source package:<distro> and
// allowlist:<name> for the hashes they vouch for, without a VirusTotal
// request; other hashes are looked up. A host with neither the index nor
// the list then skips those hashes, with the same reasons as a host that
// has them, and sends no sighting.
func TestLocalVerdictSources(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker and hashes /usr/bin/env's package; skipped under -short")
	}
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this machine:", err)
	}
	envBytes, err := os.ReadFile("/usr/bin/env")
	if err != nil {
		t.Skip("no /usr/bin/env:", err)
	}
	envHash := sha256Hex(string(envBytes))

	pc := packages.DefaultConfig()
	pc.Enabled, pc.Paths, pc.StateDir, pc.RateMB = true, []string{"/usr/bin/env"}, t.TempDir(), 0
	pk := packages.New(pc, quietLog(), &metrics.Registry{})
	t.Cleanup(pk.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pk.Index().Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Real-looking digests: the list index keys on digest prefixes.
	allowed, looked := sha256Hex("corp-agent"), sha256Hex("something else")
	list := filepath.Join(t.TempDir(), "corp.txt")
	if err := os.WriteFile(list, []byte(allowed+"  corp-agent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bc := blocklist.Config{Enabled: true, Lists: []blocklist.ListConfig{{Name: "corp", Path: list, Kind: "allow", Format: "plain"}}}
	bl, err := blocklist.New(bc, quietLog(), &metrics.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bl.Close() })

	w := newWorld(t)
	w.fake.Set(looked, vtfake.FileReply(looked, 1))
	distro := OSReleaseID("/", "unknown")
	w.local = Local{Judges: []enrich.Enricher{pk, bl}, Distro: distro}
	_, reg, _ := w.startService(t.TempDir())
	r := w.readVerdicts()
	envSighting := &kgo.Record{Key: []byte(envHash), Value: EncodeSighting(Sighting{Algo: "sha256", FirstSeen: time.Now().Unix(), Host: "h", Path: "/usr/bin/env", Count: 1})}
	w.produce(DefaultSightingsTopic, envSighting, sightingRecord(allowed, "h"), sightingRecord(looked, "h"))
	got := r.wait(t, []string{envHash, allowed, looked}, 30*time.Second)

	if v := got[envHash]; v.Status != VerdictSkipped || v.Reason != virustotal.ReasonPackage ||
		v.Source != SourcePackage+distro || !strings.HasPrefix(v.MeaningfulName, "coreutils ") || v.TTL <= 0 {
		t.Errorf("/usr/bin/env's verdict %+v, want skipped/package from %s naming coreutils", v, SourcePackage+distro)
	}
	if v := got[allowed]; v.Status != VerdictSkipped || v.Reason != virustotal.ReasonAllowlisted ||
		v.Source != SourceAllowlist+"corp" || v.MeaningfulName != "corp-agent" {
		t.Errorf("allow-listed verdict %+v, want skipped/allowlisted from allowlist:corp", v)
	}
	if v := got[looked]; v.Status != VerdictFound || v.Source != SourceVirusTotal {
		t.Errorf("other hash: %+v, want a VirusTotal hit", v)
	}
	if reqs := w.fake.Requests(); len(reqs) != 1 || reqs[0] != looked {
		t.Errorf("VirusTotal got %v, want only the hash no local source vouches for", reqs)
	}
	if n := reg.Counter("audisp_enrich_fleet_sightings_total", `result="local"`, "").Value(); n != 2 {
		t.Errorf("%d sightings answered locally, want 2", n)
	}

	host := w.startHost("bare")
	for i, c := range []struct{ hash, reason string }{{envHash, virustotal.ReasonPackage}, {allowed, virustotal.ReasonAllowlisted}} {
		ev := &audit.Event{ID: audit.EventID{Node: "bare", Serial: uint32(i)}}
		ev.Hashes = []audit.FileHash{{Path: "/opt/x/bin", Algo: "sha256", Hex: c.hash}}
		if err := host.h.Enrich(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if vt := ev.VirusTotal; vt.Status != virustotal.StatusSkipped || vt.Reason != c.reason {
			t.Errorf("host: %s got %+v, want skipped/%s", c.hash[:8], vt, c.reason)
		}
	}
	if q := host.h.spool.Stats().Queued + int(host.h.spool.Stats().Acked); q != 0 {
		t.Errorf("host sighted %d hashes the fleet vouches for", q)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
