package fleet

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
)

// outageLength is how long TestKafkaOutageAtHosts keeps the broker down.
// The issue asks for 2 minutes; the suite shrinks it to 3 s to stay quick
// (nothing in the host depends on the length: sightings wait in the spool
// however long). AUDISP_FLEET_OUTAGE=2m runs the full length.
func outageLength(t *testing.T) time.Duration {
	d := 3 * time.Second
	if v := os.Getenv("AUDISP_FLEET_OUTAGE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("AUDISP_FLEET_OUTAGE: %v", err)
		}
	}
	return d
}

// TestKafkaOutageAtHosts: the broker (kfake, persisting to a directory)
// stops while two hosts run and comes back on the same port after the
// outage. During it every event is enriched at once (pending, no wait)
// and the sightings wait in each host's disk spool; host B is restarted
// in the middle of the outage, so its sightings come back from the disk.
// After it, every sighting is delivered, nothing is counted lost, the
// service looks each hash up once, host A emits the verdict document for
// each of its events, and host B's restarted instance has the verdicts.
func TestKafkaOutageAtHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts, stops and restarts a Kafka broker; skipped under -short")
	}
	outage := outageLength(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	kdir := t.TempDir()
	w := newWorld(t, kfake.Ports(port), kfake.DataDir(kdir))
	const perHost = 10
	var hashes []string
	for i := range 2*perHost + 1 {
		h := hashN(5000 + i)
		hashes = append(hashes, h)
		w.fake.Set(h, vtfake.FileReply(h, int64(i%2)))
	}
	_, _, stopService := w.startService(t.TempDir())
	dirA, dirB := t.TempDir(), t.TempDir()
	a := w.startHostIn("hostA", dirA)
	b := w.startHostIn("hostB", dirB)

	// The normal path first.
	if r := a.enrich(t, 0, hashes[0]); r.Status != virustotal.StatusPending {
		t.Fatalf("got %+v, want pending", r)
	}
	a.waitDocs(t, 1, 20*time.Second)

	w.kf.Close()
	down := time.Now()
	var slowest time.Duration
	for i := range perHost {
		for k, s := range []*simHost{a, b} {
			t0 := time.Now()
			r := s.enrich(t, uint32(1+i), hashes[1+k*perHost+i])
			slowest = max(slowest, time.Since(t0))
			if r.Status != virustotal.StatusPending {
				t.Fatalf("%s during the outage: %+v, want pending", s.name, r)
			}
		}
	}
	// Enrich never waits for the broker (whose dial and request timeouts
	// are seconds); a spool write may take a while on a loaded machine.
	if slowest > time.Second {
		t.Errorf("the slowest Enrich during the outage took %v", slowest)
	}
	for _, s := range []*simHost{a, b} {
		if q := s.h.spool.Stats().Queued; q != perHost {
			t.Fatalf("%s spools %d sightings during the outage, want %d", s.name, q, perHost)
		}
	}
	// Host B restarts in the middle of the outage: its sightings are on disk.
	time.Sleep(outage / 2)
	if err := b.h.Close(); err != nil {
		t.Logf("closing host B with the broker away: %v", err)
	}
	b = w.newHostIn("hostB", dirB)
	if q := b.h.spool.Stats().Queued; q != perHost {
		t.Fatalf("restarted host B found %d sightings in its spool, want %d", q, perHost)
	}
	time.Sleep(time.Until(down.Add(outage)))

	up, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(kdir))
	if err != nil {
		t.Fatalf("restart kfake: %v", err)
	}
	t.Cleanup(up.Close)
	t.Logf("broker down for %v", time.Since(down).Round(time.Millisecond))

	a.waitDocs(t, 1+perHost, 60*time.Second)
	// B's sightings come from its spool alone: nothing on B is enriched
	// until the service has looked every hash up.
	w.fake.WaitRequests(t, len(hashes))
	if n := b.h.spool.Stats().Acked; n != perHost {
		t.Errorf("restarted host B delivered %d sightings from its spool, want %d", n, perHost)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hashes[1+perHost:] {
		for {
			r := b.enrich(t, 99, h)
			if r.Status == virustotal.StatusHit {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restarted host B has no verdict for %s: %+v", h[:8], r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, s := range []*simHost{a, b} {
		if n := s.reg.Counter("audisp_enrich_fleet_sightings_dropped_total", "", "").Value(); n != 0 {
			t.Errorf("%s lost %d sightings", s.name, n)
		}
	}
	if reqs := w.fake.Requests(); len(reqs) != len(hashes) || distinct(reqs) != len(hashes) {
		t.Errorf("VirusTotal got %d requests (%d distinct) for %d hashes", len(reqs), distinct(reqs), len(hashes))
	}
	stopService() // while the broker is up
}

func (w *world) startHostIn(name, dir string) *simHost {
	w.t.Helper()
	s := w.newHostIn(name, dir)
	select {
	case <-s.h.ready:
	case <-time.After(10 * time.Second):
		w.t.Fatalf("%s did not read the verdicts topic within 10s", name)
	}
	return s
}

func (s *simHost) waitDocs(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.out.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d verdict documents after %v, want %d", s.name, s.out.count(), d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
