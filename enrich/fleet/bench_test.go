package fleet

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// BenchmarkServiceSightings measures how many sightings one service
// instance consumes per second once the fleet's hashes have verdicts (the
// steady state: most sightings are of hashes already known). The timed
// sightings are produced by franz-go into the kfake broker while the
// service consumes them; the producer and the broker run in the same
// process and take their share of the CPU, so the figure is a lower bound.
//
//	go test -run '^$' -bench ServiceSightings -benchtime 20000x ./enrich/fleet/
func BenchmarkServiceSightings(b *testing.B) {
	w := newWorld(b)
	const nHashes = 1000
	var hashes []string
	for i := range nHashes {
		h := hashN(20000 + i)
		hashes = append(hashes, h)
		w.fake.Set(h, vtfake.FileReply(h, 0))
	}
	_, reg, _ := w.startService(b.TempDir())
	r := w.readVerdicts()
	var recs []*kgo.Record
	for _, h := range hashes {
		recs = append(recs, sightingRecord(h, "warm"))
	}
	w.produce(DefaultSightingsTopic, recs...)
	r.wait(b, hashes, 60*time.Second)
	before := sumSightings(reg)

	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.DefaultProduceTopic(DefaultSightingsTopic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.ResetTimer()
	ctx := context.Background()
	go func() {
		for i := range b.N {
			cl.Produce(ctx, sightingRecord(hashes[i%nHashes], "bench"), nil)
		}
	}()
	want := before + uint64(b.N)
	deadline := time.Now().Add(5 * time.Minute)
	for sumSightings(reg) < want {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d sightings", sumSightings(reg)-before, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sightings/s")
}

// stamps records when each verdict document reached a host.
type stamps struct {
	mu  sync.Mutex
	got map[string]time.Time
}

func (s *stamps) Emit(ev *audit.Event) {
	if ev.Kind != audit.KindVerdict || len(ev.Hashes) != 1 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	s.got[ev.Hashes[0].Hex] = now
	s.mu.Unlock()
}

func (s *stamps) at(h string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.got[h]
	return t, ok
}

// BenchmarkVerdictPropagation measures, with 20 hosts following the
// verdicts topic, the time from the produce of a signed verdict (as the
// service produces it, through sarama) to each host's verdict document
// for the event that waited on it. One op is one verdict reaching all 20
// hosts; p50_ms and p99_ms are over every (verdict, host) pair. Broker,
// hosts and producer share this process.
//
//	go test -run '^$' -bench VerdictPropagation -benchtime 50x ./enrich/fleet/
func BenchmarkVerdictPropagation(b *testing.B) {
	const nHosts = 20
	w := newWorld(b)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		b.Fatal(err)
	}
	hosts := make([]*Host, nHosts)
	marks := make([]*stamps, nHosts)
	for i := range hosts {
		hc := DefaultHostConfig()
		hc.Conn = w.conn()
		hc.VerdictPublicKey = base64.StdEncoding.EncodeToString(w.pub)
		hc.HostName = fmt.Sprintf("host%02d", i)
		marks[i] = &stamps{got: map[string]time.Time{}}
		h, err := NewHost(hc, marks[i], quietLog(), &metrics.Registry{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() })
		hosts[i] = h
	}
	for _, h := range hosts {
		select {
		case <-h.ready:
		case <-time.After(30 * time.Second):
			b.Fatal("a host did not read the verdicts topic")
		}
	}
	conn := w.conn()
	sc, err := conn.sarama()
	if err != nil {
		b.Fatal(err)
	}
	prod, err := sarama.NewSyncProducer([]string{w.addr}, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	v := Verdict{Status: VerdictFound, Harmless: 70, Engines: 70, TTL: 3600, Source: SourceVirusTotal}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		hash := hashN(900000 + i)
		for k, h := range hosts {
			ev := &audit.Event{ID: audit.EventID{Node: "n", Sec: 1, Serial: uint32(k)}}
			ev.Hashes = []audit.FileHash{{Path: "/opt/p", Algo: "sha256", Hex: hash}}
			_ = h.Enrich(context.Background(), ev)
		}
		v.LookedUp = time.Now().Unix()
		msg := &sarama.ProducerMessage{Topic: DefaultVerdictsTopic, Key: sarama.StringEncoder(hash), Value: sarama.ByteEncoder(EncodeVerdict(hash, v, w.priv))}
		b.StartTimer()
		t0 := time.Now()
		if _, _, err := prod.SendMessage(msg); err != nil {
			b.Fatal(err)
		}
		for k := range hosts {
			deadline := time.Now().Add(30 * time.Second)
			for {
				if at, ok := marks[k].at(hash); ok {
					lat = append(lat, at.Sub(t0))
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("host %d has no verdict document after 30s", k)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99_ms")
}

// fleetVerdict returns the i-th verdict of a fleet's verdicts topic, for
// the cache benchmarks. Out of 100: hitsPct hits (VirusTotal knows the
// file; a meaningful name from a pool of names (0: every name distinct),
// as file names recur across versions; one hit in ten malicious, with a
// threat label out of 200),
// then package verdicts (for hosts without a package index), allow-list
// verdicts (5), and VirusTotal not_found (in-house builds) for the rest.
// Dates and counts vary per file. The mix is an assumption: the
// benchmark reports each hit share separately.
func fleetVerdict(i, hitsPct, names int, now int64) (string, Verdict) {
	k := fmt.Sprintf("%064x", 1<<40+i)
	v := Verdict{Status: VerdictNotFound, LookedUp: now - int64(i%3600), TTL: 7 * 86400, Source: SourceVirusTotal}
	switch r := i % 100; {
	case r < hitsPct:
		v.Status, v.Undetected, v.Harmless, v.Reputation = VerdictFound, int64(55+i%10), int64(i%6), int64(i%20)
		v.FirstSubmission, v.LastAnalysis = 1400000000+int64(i)*997, 1700000000+int64(i)*13
		name := i
		if names > 0 {
			name = int(uint32(i)*2654435761>>8) % names // spread over the pool
		}
		v.MeaningfulName, v.Link = fmt.Sprintf("lib%d.so.%d", name, name%3), virustotal.FileLink(k)
		if r%10 == 0 {
			v.Malicious, v.Reputation, v.ThreatLabel = int64(5+i%40), -int64(i%90), fmt.Sprintf("trojan.family%d/linux", i/100%200)
		}
		v.Engines = v.Malicious + v.Harmless + v.Undetected
	case r < hitsPct+20:
		v.Status, v.Reason, v.Source = VerdictSkipped, virustotal.ReasonPackage, SourcePackage+"debian"
		v.MeaningfulName = fmt.Sprintf("pkg%d 1.%d-1", i%1500, i%7)
	case r < hitsPct+25:
		v.Status, v.Reason, v.Source = VerdictSkipped, virustotal.ReasonAllowlisted, SourceAllowlist+"corp"
		v.MeaningfulName = fmt.Sprintf("corp tool %d", i%10)
	}
	return k, v
}

// BenchmarkHostCacheMemory measures the memory a host's verdict cache
// holds per 100k verdicts, filled through the follower's callback
// (Host.verdict) with fleetVerdict's mix at several shares of hits (the
// verdicts that need a record in the cache's file). MiB/100k is the
// growth of the live heap, rss_MiB/100k that of the resident set (after
// returning freed memory to the system); both include the growth steps'
// garbage being gone; file_MiB/100k is the size of the records file (page
// cache, not resident memory). Names come from a pool of 8,000; the last
// case is the worst: all hits, every name distinct. The target is
// 2 MiB per 100k.
//
//	go test -run '^$' -bench HostCacheMemory -benchtime 1x ./enrich/fleet/
func BenchmarkHostCacheMemory(b *testing.B) {
	for _, c := range []struct{ hits, names int }{{0, 8000}, {10, 8000}, {20, 8000}, {35, 8000}, {75, 8000}, {100, 0}} {
		b.Run(fmt.Sprintf("hits=%d%%/names=%d", c.hits, c.names), func(b *testing.B) { hostCacheMemory(b, c.hits, c.names) })
	}
}

func hostCacheMemory(b *testing.B, hitsPct, names int) {
	const n = 100000
	for range b.N {
		h := cacheHost(b, n, nopEmitter{})
		now := time.Now().Unix()
		keys := make([]string, n)
		vs := make([]Verdict, n)
		for i := range n {
			keys[i], vs[i] = fleetVerdict(i, hitsPct, names, now)
		}
		var before, after runtime.MemStats
		runtime.GC()
		debug.FreeOSMemory()
		runtime.ReadMemStats(&before)
		rss0 := rss(b)
		for i := range n {
			k := string([]byte(keys[i])) // the key string the follower makes of each message
			v := vs[i]
			v.MeaningfulName, v.ThreatLabel = strings.Clone(v.MeaningfulName), strings.Clone(v.ThreatLabel) // as decoded
			h.verdict(k, &v, nil, time.Time{})
		}
		runtime.GC()
		debug.FreeOSMemory()
		runtime.ReadMemStats(&after)
		rss1 := rss(b)
		runtime.KeepAlive(keys) // the inputs were counted in before
		runtime.KeepAlive(vs)
		if h.cache.len() != n {
			b.Fatalf("cache holds %d verdicts, want %d", h.cache.len(), n)
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MiB/100k")
		b.ReportMetric(float64(rss1-rss0)/(1<<20), "rss_MiB/100k")
		b.ReportMetric(float64(h.cache.file.end)/(1<<20), "file_MiB/100k")
		_ = h.Close()
	}
}

// cacheHost returns a host with a cache of size verdicts whose brokers
// are never reached, emitting to emit: tests fill the cache through
// Host.verdict.
func cacheHost(b testing.TB, size int, emit enrich.Emitter) *Host {
	hc := DefaultHostConfig()
	hc.Brokers = []string{"127.0.0.1:1"}
	pub, _, _ := ed25519.GenerateKey(nil)
	hc.VerdictPublicKey = base64.StdEncoding.EncodeToString(pub)
	hc.CacheSize = size
	hc.StateDir = b.TempDir()
	h, err := NewHost(hc, emit, quietLog(), &metrics.Registry{})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// rss returns the resident set size of this process in bytes.
func rss(b *testing.B) int64 {
	buf, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skip("no /proc/self/statm:", err)
	}
	var size, res int64
	if _, err := fmt.Sscan(string(buf), &size, &res); err != nil {
		b.Fatal(err)
	}
	return res * int64(os.Getpagesize())
}

// BenchmarkHostCacheLookup measures what the cache adds to an event: one
// Host.Enrich of an event whose hash has a cached verdict (the common
// case once the fleet knows the hashes), in a cache of 100k verdicts of
// fleetVerdict's mix with 35 % hits: cached is any cached hash, vt_hit a
// VirusTotal hit (its record read back from the file, 1000 hits in turn),
// vt_hit_hot one of 100 hits in turn (mostly in the hot records), plain a verdict
// held in its slot's word; miss is an unknown hash already pending (the
// look-up, then the pending table).
//
//	go test -run '^$' -bench HostCacheLookup ./enrich/fleet/
func BenchmarkHostCacheLookup(b *testing.B) {
	const n = 100000
	h := cacheHost(b, n, nopEmitter{})
	defer h.Close()
	now := time.Now().Unix()
	for i := range n {
		k, v := fleetVerdict(i, 35, 8000, now)
		h.verdict(k, &v, nil, time.Time{})
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		key  func(i int) int // the i-th event's verdict, as fleetVerdict's index
	}{
		{"cached", func(i int) int { return i * 97 }},
		{"vt_hit", func(i int) int { return i*100 + i%35 }},             // fleetVerdict's hits: a record read from the file
		{"vt_hit_hot", func(i int) int { return i%100*100 + i%100%35 }}, // 100 hits over and over: from the hot records
		{"plain", func(i int) int { return i*100 + 35 + i%65 }},
		{"miss", func(i int) int { return n + i*97 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			evs := make([]*audit.Event, 1000)
			for i := range evs {
				evs[i] = &audit.Event{}
				evs[i].Hashes = []audit.FileHash{{Path: "/opt/x", Algo: "sha256", Hex: fmt.Sprintf("%064x", 1<<40+c.key(i))}}
				_ = h.Enrich(ctx, evs[i])
			}
			b.ResetTimer()
			for i := range b.N {
				_ = h.Enrich(ctx, evs[i%len(evs)])
			}
		})
	}
}

// BenchmarkVerdictCacheCompact measures one compaction of the cache's
// file (under the cache's mutex: events wait for it): 100k hits cached,
// 60k of them removed, the 40k live records copied to a new file.
//
//	go test -run '^$' -bench VerdictCacheCompact -benchtime 5x ./enrich/fleet/
func BenchmarkVerdictCacheCompact(b *testing.B) {
	const n = 100000
	now := time.Now()
	for range b.N {
		b.StopTimer()
		c := testCache(b, n)
		keys := make([]string, n)
		for i := range n {
			k, v := fleetVerdict(i, 100, 0, now.Unix())
			keys[i] = k
			c.put(k, &v, false, now)
		}
		for i := range n * 6 / 10 {
			c.remove(keys[i])
		}
		live := c.file.end - c.file.dead
		b.StartTimer()
		c.mu.Lock()
		c.compact(now)
		c.mu.Unlock()
		b.StopTimer()
		if c.file.end != live {
			b.Fatalf("compacted to %d bytes, want %d", c.file.end, live)
		}
		b.ReportMetric(float64(live)/(1<<20), "live_MiB")
	}
}
