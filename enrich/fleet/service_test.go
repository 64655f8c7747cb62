package fleet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

const vtKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// world is one kfake broker, the VirusTotal fake and a signing key.
type world struct {
	t       testing.TB
	kf      *kfake.Cluster
	addr    string
	fake    *vtfake.Server
	keyFile string
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
	local   Local // the services' local verdict sources
}

func newWorld(t testing.TB, opts ...kfake.Opt) *world {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	w := &world{t: t, kf: c, addr: c.ListenAddrs()[0], fake: vtfake.New(t, vtKey), keyFile: filepath.Join(t.TempDir(), "signing.key")}
	pubText, err := GenerateKey(w.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if w.pub, err = ParsePublicKey(pubText); err != nil {
		t.Fatal(err)
	}
	if w.priv, err = ReadPrivateKey(w.keyFile); err != nil {
		t.Fatal(err)
	}
	return w
}

func quietLog() *slog.Logger {
	if os.Getenv("FLEET_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (w *world) conn() Conn {
	c := defaultConn()
	c.Brokers = []string{w.addr}
	c.DialTimeout = 2 * time.Second
	return c
}

func (w *world) serviceConfig() ServiceConfig {
	sc := DefaultServiceConfig()
	sc.Conn = w.conn()
	sc.SigningKeyFile = w.keyFile
	sc.Partitions, sc.ReplicationFactor = 4, 1
	return sc
}

// vtConfig is the service's [enrich.virustotal]: the fake, no budget limit.
func (w *world) vtConfig(stateDir string) virustotal.Config {
	vc := virustotal.DefaultConfig()
	vc.Enabled, vc.APIKey, vc.Host, vc.StateDir = true, vtKey, w.fake.URL(), stateDir
	vc.PerMinute, vc.PerDay, vc.PerMonth = 0, 0, 0
	vc.Timeout = 2 * time.Second
	return vc
}

// startService starts a service instance with its own state directory
// and consumes until the test ends or stop is called.
func (w *world) startService(stateDir string) (s *Service, reg *metrics.Registry, stop func()) {
	w.t.Helper()
	reg = &metrics.Registry{}
	s, err := NewService(w.serviceConfig(), w.vtConfig(stateDir), w.local, quietLog().With("dir", filepath.Base(stateDir)), reg)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := s.Close(); err != nil {
				w.t.Errorf("service Close: %v", err)
			}
			<-done
		})
	}
	w.t.Cleanup(stop)
	return s, reg, stop
}

// produce writes records with a franz-go client (an independent Kafka
// implementation from the sarama the code uses).
func (w *world) produce(topic string, recs ...*kgo.Record) {
	w.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		w.t.Fatalf("produce to %s: %v", topic, err)
	}
}

func sightingRecord(hash, host string) *kgo.Record {
	return &kgo.Record{Key: []byte(hash), Value: EncodeSighting(Sighting{Algo: "sha256", FirstSeen: time.Now().Unix(), Host: host, Path: "/usr/bin/" + hash[:6], Count: 1})}
}

// verdictReader follows the verdicts topic as a host does and collects
// what verifies.
type verdictReader struct {
	mu  sync.Mutex
	got map[string]Verdict
	f   *follower
	reg *metrics.Registry
}

func (w *world) readVerdicts() *verdictReader {
	w.t.Helper()
	conn := w.conn()
	sc, err := conn.sarama()
	if err != nil {
		w.t.Fatal(err)
	}
	cl, err := sarama.NewClient([]string{w.addr}, sc)
	if err != nil {
		w.t.Fatal(err)
	}
	r := &verdictReader{got: map[string]Verdict{}, reg: &metrics.Registry{}}
	r.f, err = startFollower(cl, DefaultVerdictsTopic, verdictKeys{accept: []ed25519.PublicKey{w.pub}}, r.reg, quietLog(), func(k string, v *Verdict, _ []byte, _ time.Time) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if v != nil {
			r.got[k] = *v
		}
		return true
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { r.f.close(); cl.Close() })
	return r
}

func (r *verdictReader) wait(t testing.TB, hashes []string, d time.Duration) map[string]Verdict {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		missing := 0
		for _, h := range hashes {
			if _, ok := r.got[h]; !ok {
				missing++
			}
		}
		snap := make(map[string]Verdict, len(r.got))
		for k, v := range r.got {
			snap[k] = v
		}
		r.mu.Unlock()
		if missing == 0 {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hashes have no verdict after %v", missing, len(hashes), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hashN(i int) string { return fmt.Sprintf("%064x", 0xfee1000+i) }

func distinct(xs []string) int {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return len(m)
}

// TestServiceOneLookupPerHash: two service instances share a consumer
// group; 40 hashes sighted by 5 hosts each (200 sightings) cost exactly 40
// VirusTotal requests, and every hash gets one signed verdict with the
// answer's counts, although
//   - instance 1 starts with 10 of the hashes in its vt.db queue (left by
//     an instance that died before looking them up),
//   - the sightings start while the group is still forming, and
//   - instance 1 is stopped and started again while the sightings flow and
//     the lookups (25 ms each) are under way: two more rebalances, each
//     with hashes queued, in flight and sighted on both sides.
//
// Then a restarted instance (same state dir) asks nothing again when the
// hashes are sighted anew.
func TestServiceOneLookupPerHash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker and two service instances; skipped under -short")
	}
	w := newWorld(t)
	const n = 40
	var hashes []string
	for i := range n {
		h := hashN(i)
		hashes = append(hashes, h)
		rep := vtfake.APIError(404, "NotFoundError", "not found") // every 4th is unknown to VirusTotal
		if i%4 != 0 {
			rep = vtfake.FileReply(h, int64(i%3))
		}
		rep.Delay = 25 * time.Millisecond
		w.fake.Set(h, rep)
	}
	dir1, dir2 := t.TempDir(), t.TempDir()
	w.leftQueue(dir1, hashes[:10])
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	r := w.readVerdicts()
	regs := []*metrics.Registry{}
	_, reg1, stop1 := w.startService(dir1)
	_, reg2, _ := w.startService(dir2)
	regs = append(regs, reg1, reg2)

	produced := make(chan struct{})
	go func() { // 5 hosts sight every hash, over about a second
		defer close(produced)
		for host := range 5 {
			for half := range 2 {
				var recs []*kgo.Record
				for _, h := range hashes[half*n/2 : (half+1)*n/2] {
					recs = append(recs, sightingRecord(h, fmt.Sprintf("host%d", host)))
				}
				w.produce(DefaultSightingsTopic, recs...)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	time.Sleep(400 * time.Millisecond)
	stop1() // hands its queue off; the group rebalances
	_, reg1, stop1 = w.startService(dir1)
	regs = append(regs, reg1)
	<-produced

	got := r.wait(t, hashes, 30*time.Second)
	for i, h := range hashes {
		v := got[h]
		switch {
		case i%4 == 0 && v.Status != VerdictNotFound:
			t.Errorf("%s: status %q, want not_found", h, v.Status)
		case i%4 != 0 && (v.Status != VerdictFound || v.Malicious != int64(i%3) || v.Engines != 61+int64(i%3)):
			t.Errorf("%s: verdict %+v, want hit with %d malicious of %d engines", h, v, i%3, 61+i%3)
		}
		if v.Source != SourceVirusTotal || v.TTL <= 0 || v.LookedUp == 0 {
			t.Errorf("%s: verdict %+v lacks source, ttl or lookup time", h, v)
		}
	}
	var handed uint64
	for _, reg := range regs {
		handed += reg.Counter("audisp_enrich_fleet_handed_off_total", "", "").Value()
	}
	reqs := w.fake.Requests()
	t.Logf("%d VirusTotal requests for %d hashes; %d queued hashes handed off at session boundaries", len(reqs), n, handed)
	if len(reqs) != n || distinct(reqs) != n {
		seen, twice := map[string]int{}, []string{}
		for i, h := range reqs {
			if k, ok := seen[h]; ok {
				twice = append(twice, fmt.Sprintf("%s (requests %d and %d)", h[56:], k, i))
			}
			seen[h] = i
		}
		t.Fatalf("VirusTotal got %d requests for %d distinct hashes, want %d; again: %v", len(reqs), distinct(reqs), n, twice)
	}
	if handed < 10 {
		t.Errorf("%d hashes were handed off, want at least the 10 left in vt.db", handed)
	}

	// Restart instance 1 and sight everything again: all answered from
	// the caches and the topic, no request.
	stop1()
	_, reg1, _ = w.startService(dir1)
	before := sumSightings(reg2)
	var again []*kgo.Record // kgo records are not reusable
	for _, h := range hashes {
		again = append(again, sightingRecord(h, "host0"))
	}
	w.produce(DefaultSightingsTopic, again...)
	deadline := time.Now().Add(20 * time.Second)
	for sumSightings(reg1)+sumSightings(reg2)-before < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := sumSightings(reg1) + sumSightings(reg2) - before; got < n {
		t.Fatalf("the instances consumed %d of the %d new sightings", got, n)
	}
	if reqs := w.fake.Requests(); len(reqs) != n {
		t.Errorf("after a restart and new sightings VirusTotal got %d requests, want still %d", len(reqs), n)
	}
}

// leftQueue leaves hashes queued in dir's vt.db, as an instance that died
// before looking them up does.
func (w *world) leftQueue(dir string, hashes []string) {
	w.t.Helper()
	e, err := virustotal.NewHeld(w.vtConfig(dir), nopEmitter{}, quietLog(), &metrics.Registry{})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, h := range hashes {
		if res, _ := e.Request(audit.FileHash{Path: "/usr/bin/" + h[:6], Algo: "sha256", Hex: h}, audit.EventID{Node: "dead"}, 1); res != nil {
			w.t.Fatalf("%s: %+v, want queued", h, res)
		}
	}
	if err := e.Close(); err != nil {
		w.t.Fatal(err)
	}
}

type nopEmitter struct{}

func (nopEmitter) Emit(*audit.Event) {}

func sumSightings(reg *metrics.Registry) uint64 {
	var n uint64
	for _, r := range sightingResults {
		n += reg.Counter("audisp_enrich_fleet_sightings_total", metrics.Label("result", r), "").Value()
	}
	return n
}

// TestForgedVerdictsIgnored: a host that can write to the verdicts topic
// cannot mark a file clean: unsigned, wrongly signed and replayed
// verdicts are ignored and counted by reason; the genuine one is kept.
func TestForgedVerdictsIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker; skipped under -short")
	}
	w := newWorld(t)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	good, forged, replayed := hashN(1), hashN(2), hashN(3)
	clean := Verdict{Status: VerdictFound, Harmless: 70, Engines: 70, LookedUp: time.Now().Unix(), TTL: 3600, Source: SourceVirusTotal}
	unsigned := []byte(`{"v":1,"verdict":{"status":"hit","malicious":0,"suspicious":0,"harmless":70,"undetected":0,"engines":70,"looked_up":1,"ttl_seconds":99999,"source":"virustotal"},"sig":""}`)
	r := w.readVerdicts()
	w.produce(DefaultVerdictsTopic,
		&kgo.Record{Key: []byte(good), Value: EncodeVerdict(good, clean, w.priv)},
		&kgo.Record{Key: []byte(forged), Value: unsigned},
		&kgo.Record{Key: []byte(forged), Value: EncodeVerdict(forged, clean, otherPriv)},
		&kgo.Record{Key: []byte(replayed), Value: EncodeVerdict(good, clean, w.priv)},
		&kgo.Record{Key: []byte(forged), Value: []byte("garbage")},
	)
	r.wait(t, []string{good}, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	count := func(res string) uint64 {
		return r.reg.Counter("audisp_enrich_fleet_verdicts_read_total", metrics.Label("result", res), "").Value()
	}
	for count("unsigned")+count("bad_signature")+count("malformed") < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if u, b, m := count("unsigned"), count("bad_signature"), count("malformed"); u != 1 || b != 2 || m != 1 {
		t.Errorf("rejected unsigned=%d bad_signature=%d malformed=%d, want 1, 2, 1", u, b, m)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.got))
	for k := range r.got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 1 || keys[0] != good {
		t.Errorf("accepted verdicts for %v, want only %s", keys, good)
	}
}

// TestEnsureTopics: `verdicts init` creates both topics, the verdicts one
// compacted, and a second run creates nothing.
func TestEnsureTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka broker; skipped under -short")
	}
	w := newWorld(t)
	cfg := w.serviceConfig()
	created, err := EnsureTopics(cfg, quietLog())
	if err != nil || len(created) != 2 {
		t.Fatalf("created %v, %v; want both topics", created, err)
	}
	if again, err := EnsureTopics(cfg, quietLog()); err != nil || len(again) != 0 {
		t.Fatalf("second run created %v, %v; want nothing", again, err)
	}
	sc, err := cfg.sarama()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: cfg.VerdictsTopic}}, sarama.DescribeConfigsOptions{})
	if err != nil || len(res) != 1 {
		t.Fatalf("describe: %v", err)
	}
	policy := ""
	for _, e := range res[0].Configs {
		if e.Name == "cleanup.policy" {
			policy = e.Value
		}
	}
	if policy != "compact" {
		t.Errorf("verdicts topic cleanup.policy %q, want compact", policy)
	}
}
