package fleet

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// docs collects a host's verdict documents by hash.
type docs struct {
	mu  sync.Mutex
	got map[string]*audit.Event
}

func (d *docs) Emit(ev *audit.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ev.Kind == audit.KindVerdict && len(ev.Hashes) == 1 {
		d.got[ev.Hashes[0].Hex] = ev
	}
}

func (d *docs) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.got)
}

type simHost struct {
	name   string
	h      *Host
	reg    *metrics.Registry
	out    *docs
	hashes []string
}

func (w *world) startHost(name string) *simHost {
	w.t.Helper()
	s := w.newHost(name)
	select {
	case <-s.h.ready:
	case <-time.After(10 * time.Second):
		w.t.Fatalf("%s did not read the verdicts topic within 10s", name)
	}
	return s
}

// newHost starts a host (sightings spooled in memory) and returns without
// waiting for the brokers.
func (w *world) newHost(name string) *simHost { return w.newHostIn(name, "") }

// newHostIn is newHost with the sightings spool on disk under stateDir.
func (w *world) newHostIn(name, stateDir string) *simHost {
	w.t.Helper()
	hc := DefaultHostConfig()
	hc.Conn = w.conn()
	hc.VerdictPublicKey = base64.StdEncoding.EncodeToString(w.pub)
	hc.HostName = name
	hc.StateDir = stateDir
	s := &simHost{name: name, reg: &metrics.Registry{}, out: &docs{got: map[string]*audit.Event{}}}
	h, err := NewHost(hc, s.out, quietLog(), s.reg)
	if err != nil {
		w.t.Fatal(err)
	}
	s.h = h
	w.t.Cleanup(func() { _ = h.Close() })
	return s
}

func (s *simHost) enrich(t testing.TB, serial uint32, hash string) *audit.VTResult {
	t.Helper()
	ev := &audit.Event{ID: audit.EventID{Node: s.name, Sec: 1700000000, Serial: serial}}
	ev.Hashes = []audit.FileHash{{Path: "/usr/bin/" + hash[:6], Algo: "sha256", Hex: hash}}
	if err := s.h.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev.VirusTotal
}

// TestFleetSimulation: 20 hosts without a key, each executing an
// overlapping share of 60 hashes (each hash on 6 or 7 hosts), and two
// service instances whose consumer group forms while the sightings come. VirusTotal gets exactly one request per distinct
// hash; every host gets a verdict document for each hash it reported
// pending, naming its event; a forged unsigned verdict on the topic is
// ignored and counted by every host; a restarted host answers all its
// hashes from the topic and causes no request.
func TestFleetSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker, 2 service instances and 20 hosts; skipped under -short")
	}
	const nHosts, nHashes = 20, 60
	w := newWorld(t)
	var all []string
	for i := range nHashes {
		h := hashN(1000 + i)
		all = append(all, h)
		if i%5 != 0 {
			w.fake.Set(h, vtfake.FileReply(h, int64(i%2)))
		}
	}
	// The hosts start at once: their sightings arrive while the group of
	// the two instances is still forming (rebalances included).
	w.startService(t.TempDir())
	w.startService(t.TempDir())

	// A host that can write to the verdicts topic tries to whitelist all[0].
	w.produce(DefaultVerdictsTopic, &kgo.Record{Key: []byte(all[0]), Value: []byte(
		`{"v":1,"verdict":{"status":"hit","malicious":0,"suspicious":0,"harmless":70,"undetected":0,"engines":70,"looked_up":1700000000,"ttl_seconds":999999999,"source":"virustotal"},"sig":""}`)})

	hosts := make([]*simHost, nHosts)
	for i := range hosts {
		hosts[i] = w.startHost(fmt.Sprintf("host%02d", i))
		for j, h := range all {
			if (i+j)%3 == 0 {
				hosts[i].hashes = append(hosts[i].hashes, h)
			}
		}
	}
	for _, s := range hosts {
		if n := s.reg.Counter("audisp_enrich_fleet_verdicts_read_total", `result="unsigned"`, "").Value(); n != 1 {
			t.Errorf("%s counted %d unsigned verdicts, want 1", s.name, n)
		}
		for k, h := range s.hashes {
			if r := s.enrich(t, uint32(k), h); r.Status != virustotal.StatusPending {
				t.Fatalf("%s: first sight of %s got %+v, want pending (a forged verdict must not answer)", s.name, h[:8], r)
			}
		}
	}
	deadline := time.Now().Add(45 * time.Second)
	for _, s := range hosts {
		for s.out.count() < len(s.hashes) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := s.out.count(); got != len(s.hashes) {
			t.Fatalf("%s got %d verdict documents for %d pending hashes (sent %d dropped %d, vt requests %d)", s.name, got, len(s.hashes), s.reg.Counter("audisp_enrich_fleet_sightings_sent_total", "", "").Value(), s.reg.Counter("audisp_enrich_fleet_sightings_dropped_total", "", "").Value(), len(w.fake.Requests()))
		}
		for k, h := range s.hashes {
			doc := s.out.got[h]
			want := audit.EventID{Node: s.name, Sec: 1700000000, Serial: uint32(k)}
			if doc.ID != want || len(doc.Related) != 1 || doc.Related[0] != want.String() {
				t.Errorf("%s: verdict document for %s has id %v related %v, want %v", s.name, h[:8], doc.ID, doc.Related, want)
			}
			i := 1000 + indexOf(all, h)
			vt := doc.VirusTotal
			switch {
			case (i-1000)%5 == 0 && vt.Status != virustotal.StatusNotFound:
				t.Errorf("%s: %s status %q, want not_found", s.name, h[:8], vt.Status)
			case (i-1000)%5 != 0 && (vt.Status != virustotal.StatusHit || vt.VTVerdict == nil || vt.Malicious != int64((i-1000)%2)):
				t.Errorf("%s: %s verdict %+v, want hit with %d malicious", s.name, h[:8], vt, (i-1000)%2)
			}
		}
	}
	reqs := w.fake.Requests()
	if len(reqs) != nHashes || distinct(reqs) != nHashes {
		t.Fatalf("VirusTotal got %d requests (%d distinct) for %d distinct hashes", len(reqs), distinct(reqs), nHashes)
	}

	// Restart host 0: it reads the topic again and asks nothing.
	if err := hosts[0].h.Close(); err != nil {
		t.Fatal(err)
	}
	again := w.startHost(hosts[0].name)
	for k, h := range hosts[0].hashes {
		if r := again.enrich(t, uint32(100+k), h); r.Status != virustotal.StatusHit && r.Status != virustotal.StatusNotFound {
			t.Errorf("restarted host: %s got %+v, want the fleet's verdict", h[:8], r)
		}
	}
	if n := again.reg.Counter("audisp_enrich_fleet_sightings_sent_total", "", "").Value(); n != 0 {
		t.Errorf("restarted host sent %d sightings, want 0", n)
	}
	if reqs := w.fake.Requests(); len(reqs) != nHashes {
		t.Errorf("after a host restart VirusTotal got %d requests, want still %d", len(reqs), nHashes)
	}
	t.Logf("fleet: %d hosts, %d distinct hashes, %d VirusTotal requests", nHosts, nHashes, len(w.fake.Requests()))
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// TestHostStartsWithoutKafka: a host whose brokers are away starts at
// once, marks events pending without blocking, and once the broker and the
// service come up it sights the hash and emits the verdict document.
func TestHostStartsWithoutKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker; skipped under -short")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	w := &world{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	dead := newWorld(t) // keys and VirusTotal fake; its own broker is not used by the host
	w.fake, w.keyFile, w.pub, w.priv = dead.fake, dead.keyFile, dead.pub, dead.priv
	h := hashN(7)
	w.fake.Set(h, vtfake.FileReply(h, 2))

	host := w.newHost("lonely")
	start := time.Now()
	if r := host.enrich(t, 1, h); r.Status != virustotal.StatusPending {
		t.Fatalf("got %+v, want pending", r)
	}
	// Not the broker's timeouts (seconds); the bound leaves room for a
	// loaded machine.
	if d := time.Since(start); d > time.Second {
		t.Errorf("Enrich took %v with the brokers away", d)
	}
	up := newWorld(t, kfake.Ports(port))
	up.fake, up.keyFile, up.pub, up.priv = w.fake, w.keyFile, w.pub, w.priv
	up.startService(t.TempDir())
	deadline := time.Now().Add(30 * time.Second)
	for host.out.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	host.out.mu.Lock()
	doc := host.out.got[h]
	host.out.mu.Unlock()
	if doc == nil || doc.VirusTotal.Status != virustotal.StatusHit || doc.VirusTotal.Malicious != 2 {
		t.Fatalf("verdict document %+v, want a hit with 2 malicious", doc)
	}
}
