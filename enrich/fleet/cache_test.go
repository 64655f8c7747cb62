package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// remove drops the digest's verdict, as eviction does.
func (c *verdictCache) remove(digest string) {
	if t, ok := c.tag(digest); ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i := c.tab.find(t); i >= 0 {
			c.delete(i)
		}
	}
}

// cacheVerdicts are verdicts of every shape the topic can carry, each
// with its digest: in a word (plain) or in a record (hits, unusual reasons).
func cacheVerdicts(now int64) map[string]Verdict {
	sha := func(i int) string { return fmt.Sprintf("%064x", 0xabc000+i) }
	md5 := fmt.Sprintf("%032x", 0x77)
	sha1 := fmt.Sprintf("%040x", 0x78)
	at := func(v Verdict) Verdict { v.LookedUp, v.TTL = now-10, 3600; return v }
	return map[string]Verdict{
		sha(1): at(Verdict{Status: VerdictFound, Malicious: 3, Suspicious: 1, Harmless: 2, Undetected: 60, Engines: 66,
			Reputation: -30, ThreatLabel: "trojan.mirai/x", MeaningfulName: "x.bin", FirstSubmission: 1600000000,
			LastAnalysis: 1700000000, Link: virustotal.FileLink(sha(1)), Source: SourceVirusTotal}),
		sha(2): at(Verdict{Status: VerdictFound, Undetected: 70, Engines: 70, Source: SourceVirusTotal}),
		sha(3): at(Verdict{Status: VerdictNotFound, Source: SourceVirusTotal}),
		sha(4): at(Verdict{Status: VerdictSkipped, Reason: virustotal.ReasonPackage, MeaningfulName: "coreutils 9.1-1", Source: SourcePackage + "debian"}),
		sha(5): at(Verdict{Status: VerdictSkipped, Reason: virustotal.ReasonAllowlisted, MeaningfulName: "corp tools", Source: SourceAllowlist + "corp"}),
		// Whole: an error reason, counts and a reputation past the record, a link to another file.
		sha(6): at(Verdict{Status: VerdictError, Reason: "http 503", Source: SourceVirusTotal}),
		sha(7): at(Verdict{Status: VerdictFound, Undetected: 300, Reputation: 40000, Source: SourceVirusTotal}),
		sha(8): at(Verdict{Status: VerdictFound, FirstSubmission: -1, Source: SourceVirusTotal}),
		md5:    at(Verdict{Status: VerdictFound, Harmless: 1, Link: virustotal.FileLink(sha(9)), Source: SourceVirusTotal}),
		sha1:   at(Verdict{Status: VerdictNotFound, Source: SourceVirusTotal}),
	}
}

// TestVerdictCacheExact: every verdict comes back exactly as result
// renders it, whichever form holds it.
func TestVerdictCacheExact(t *testing.T) {
	now := time.Now()
	c := testCache(t, 100)
	vs := cacheVerdicts(now.Unix())
	for k, v := range vs {
		c.put(k, &v, false, now)
	}
	if c.len() != len(vs) {
		t.Fatalf("cached %d, want %d", c.len(), len(vs))
	}
	if n := c.records(); n != 6 {
		t.Errorf("%d records, want 6", n)
	}
	for k, v := range vs {
		got, ok := c.get(k, now)
		if want := result(k, &v); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v %+v (%v), want %+v %+v", k, got, got.VTVerdict, ok, want, want.VTVerdict)
		}
	}
	if _, ok := c.get(strings.Repeat("0", 64), now); ok {
		t.Error("an unknown digest hit")
	}
	if _, ok := c.get("not hex", now); ok {
		t.Error("a malformed digest hit")
	}
	for k := range vs {
		c.remove(k)
	}
	if c.len() != 0 || c.file.dead != c.file.end {
		t.Errorf("after removing all: %d entries, %d of %d file bytes live", c.len(), c.file.end-c.file.dead, c.file.end)
	}
}

// TestVerdictCacheExpiry: a verdict is served until its expiry rounded
// down to 16 s, then dropped; one expiring within 16 s is not kept.
func TestVerdictCacheExpiry(t *testing.T) {
	now := time.Now()
	c := testCache(t, 10)
	k := fmt.Sprintf("%064x", 1)
	v := Verdict{Status: VerdictNotFound, LookedUp: now.Unix(), TTL: 100, Source: SourceVirusTotal}
	c.put(k, &v, false, now)
	if _, ok := c.get(k, now.Add(100-expUnit*time.Second)); !ok {
		t.Error("not served 16 s before its expiry")
	}
	if _, ok := c.get(k, now.Add(100*time.Second)); ok || c.len() != 0 {
		t.Errorf("served or kept at its expiry (len %d)", c.len())
	}
	v.TTL = 5
	c.put(k, &v, false, now)
	if c.len() != 0 {
		t.Error("kept a verdict expiring within 16 s")
	}
	h := Verdict{Status: VerdictFound, Harmless: 1, LookedUp: now.Unix(), TTL: 3600, ThreatLabel: "l", Source: SourceVirusTotal}
	c.put(k, &h, false, now)
	if _, ok := c.get(k, now.Add(2*time.Hour)); ok || c.len() != 0 || c.file.dead != c.file.end {
		t.Errorf("an expired hit was served or kept (len %d, %d live file bytes)", c.len(), c.file.end-c.file.dead)
	}
}

// TestVerdictCacheModel runs random puts, gets, removes and evictions
// against a plain map: the table (growth, backward-shift deletion, the
// CLOCK hand) never loses or invents an entry, never exceeds its
// capacity, and frees the records and strings of what it drops.
func TestVerdictCacheModel(t *testing.T) {
	now := time.Now()
	const capacity = 300
	c := testCache(t, capacity)
	model := map[string]Verdict{}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		k := fmt.Sprintf("%064x", rng.IntN(1000))
		switch op := rng.IntN(10); {
		case op < 5:
			v := randomVerdict(rng, k, now.Unix())
			if c.put(k, &v, false, now) {
				model[k] = v
			} else if held, in := model[k]; !in || held.LookedUp <= v.LookedUp {
				t.Fatalf("step %d: %s: put refused looked_up %d over %v %d", step, k, v.LookedUp, in, held.LookedUp)
			}
		case op < 9:
			got, ok := c.get(k, now)
			if want, in := model[k]; ok && (!in || !reflect.DeepEqual(got, result(k, &want))) {
				t.Fatalf("step %d: %s: got %+v, model has %v %+v", step, k, got, in, want)
			}
		default:
			c.remove(k)
			delete(model, k)
		}
		if c.len() > capacity {
			t.Fatalf("step %d: %d entries over capacity %d", step, c.len(), capacity)
		}
	}
	// Every entry in the table is in the model, and findable.
	n := 0
	for i, tg := range c.tab.keys {
		if tg != 0 {
			n++
			if c.tab.find(tg) != i {
				t.Fatalf("slot %d unreachable from its home", i)
			}
		}
	}
	if n < capacity/2 || n != c.len() || len(c.tab.keys) != c.maxSlots() {
		t.Fatalf("%d tags for %d entries, %d slots (want %d)", n, c.len(), len(c.tab.keys), c.maxSlots())
	}
	kept := 0
	for k, v := range model {
		if got, ok := c.get(k, now); ok {
			kept++
			if !reflect.DeepEqual(got, result(k, &v)) {
				t.Fatalf("%s: got %+v, want %+v", k, got, result(k, &v))
			}
		}
	}
	if kept != n {
		t.Fatalf("%d model entries found, table holds %d", kept, n)
	}
	for k := range model {
		c.remove(k)
	}
	if c.len() != 0 || c.file.dead != c.file.end {
		t.Fatalf("after removing all: %d entries, %d of %d file bytes live", c.len(), c.file.end-c.file.dead, c.file.end)
	}
}

// TestVerdictCacheCompact: once over half of the file is dead records,
// the live ones are copied to a new file, and every verdict still comes
// back exactly, with its reference bit (also those read into the hot
// records before, and one replaced after that).
func TestVerdictCacheCompact(t *testing.T) {
	now := time.Now()
	const n = 6000
	c := testCache(t, n)
	keys, vs := make([]string, n), make([]Verdict, n)
	for i := range n {
		keys[i], vs[i] = fleetVerdict(i, 100, 0, now.Unix())
		c.put(keys[i], &vs[i], i%3 == 0, now)
	}
	full := c.file.end
	for i := 0; i < n; i += 12 { // into the hot records (their bits are set already)
		c.get(keys[i], now)
	}
	vs[12].Malicious, vs[12].MeaningfulName = 9, "replaced" // a hot record replaced before the compaction
	c.put(keys[12], &vs[12], true, now)
	for i := range n {
		if i%4 != 0 {
			c.remove(keys[i])
		}
	}
	c.put(keys[0], &vs[0], true, now) // a put compacts when over half is dead
	if c.file.dead != 0 || c.file.end > full/3 || c.records() != n/4 {
		t.Fatalf("after dropping 3/4 of %d bytes: %d bytes, %d dead, %d records", full, c.file.end, c.file.dead, c.records())
	}
	for i := 0; i < n; i += 4 {
		j := c.tab.find(func() uint64 { tg, _ := c.tag(keys[i]); return tg }())
		if used := c.tab.vals[j]&refBit != 0; used != (i%3 == 0) {
			t.Fatalf("%d: reference bit %v after compaction", i, used)
		}
		if got, ok := c.get(keys[i], now); !ok || !reflect.DeepEqual(got, result(keys[i], &vs[i])) {
			t.Fatalf("%d: got %+v (%v), want %+v", i, got, ok, result(keys[i], &vs[i]))
		}
	}
}

// TestVerdictCacheClock: entries used since the hand last passed survive
// the eviction of unused ones (50 evictions: less than one turn of the
// hand over the 106 slots).
func TestVerdictCacheClock(t *testing.T) {
	now := time.Now()
	c := testCache(t, 100)
	v := Verdict{Status: VerdictNotFound, LookedUp: now.Unix(), TTL: 3600, Source: SourceVirusTotal}
	key := func(i int) string { return fmt.Sprintf("%064x", i) }
	for i := range 100 {
		c.put(key(i), &v, false, now)
	}
	for i := range 10 {
		c.get(key(i), now)
	}
	for i := 100; i < 150; i++ {
		c.put(key(i), &v, false, now)
	}
	for i := range 10 {
		if _, ok := c.get(key(i), now); !ok {
			t.Errorf("used entry %d evicted before unused ones", i)
		}
	}
	if c.len() != 100 {
		t.Errorf("len %d, want 100", c.len())
	}
}

// TestVerdictCacheConcurrent: the follower's goroutines put while events
// get (run it with -race); every verdict read is one that was put.
func TestVerdictCacheConcurrent(t *testing.T) {
	now := time.Now()
	c := testCache(t, 200)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 3000 {
				k := fmt.Sprintf("%064x", rng.IntN(400))
				if g%2 == 0 {
					v := Verdict{Status: VerdictFound, Harmless: 1, MeaningfulName: k[60:], LookedUp: now.Unix(), TTL: 3600, Source: SourceVirusTotal}
					c.put(k, &v, false, now)
				} else if r, ok := c.get(k, now); ok && r.MeaningfulName != k[60:] {
					t.Errorf("%s: got the name %q", k, r.MeaningfulName)
				}
			}
		}()
	}
	wg.Wait()
	if c.len() > 200 {
		t.Errorf("%d entries over capacity", c.len())
	}
}

// randomVerdict draws a verdict the decoder accepts, of any shape.
func randomVerdict(rng *rand.Rand, key string, now int64) Verdict {
	v := Verdict{LookedUp: now - rng.Int64N(1000), TTL: 1 + rng.Int64N(1<<20), Source: SourceVirusTotal}
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	switch rng.IntN(4) {
	case 0:
		v.Status = VerdictNotFound
	case 1:
		v.Status, v.Reason = VerdictSkipped, pick(virustotal.ReasonPackage, virustotal.ReasonAllowlisted)
		v.MeaningfulName = pick("", "coreutils 9.1-1")
	case 2:
		v.Status, v.Reason = VerdictError, pick("", "http 500")
	default:
		n := func() int64 { return rng.Int64N(300) }
		v.Status = VerdictFound
		v.Malicious, v.Suspicious, v.Harmless, v.Undetected = n()/10, n()/30, n()/10, n()
		v.Reputation = rng.Int64N(1<<17) - 1<<16
		v.ThreatLabel, v.MeaningfulName = pick("", "trojan.a", "miner.b"), pick("", "a.out", fmt.Sprint("name-", rng.IntN(5000)))
		v.FirstSubmission, v.LastAnalysis = rng.Int64N(math.MaxUint32+10), rng.Int64N(1<<31)
		v.Link = pick("", virustotal.FileLink(key), virustotal.FileLink("ff"+key[2:]))
	}
	return v
}

// FuzzVerdictCache packs fuzzed verdict fields and reads them back: what
// the cache serves is exactly result's rendering, whatever the values.
func FuzzVerdictCache(f *testing.F) {
	f.Add("hit", "", int64(3), int64(0), int64(2), int64(60), int64(-5), "trojan.x", "x.bin", int64(1600000000), int64(1700000000), true, int64(3600))
	f.Add("skipped", "package", int64(0), int64(0), int64(0), int64(0), int64(0), "", "coreutils 9.1-1", int64(0), int64(0), false, int64(86400))
	f.Add("hit", "", int64(256), int64(-1), int64(0), int64(0), int64(1<<40), "", "", int64(-1), int64(1<<33), false, int64(17))
	f.Add("error", "http 503", int64(0), int64(0), int64(0), int64(0), int64(0), "", "", int64(0), int64(0), false, int64(1<<62))
	key := fmt.Sprintf("%064x", 42)
	f.Fuzz(func(t *testing.T, status, reason string, mal, sus, harm, und, rep int64, label, name string, first, last int64, link bool, ttl int64) {
		now := time.Now()
		v := Verdict{Status: status, Reason: reason, Malicious: mal, Suspicious: sus, Harmless: harm, Undetected: und,
			Reputation: rep, ThreatLabel: label, MeaningfulName: name, FirstSubmission: first, LastAnalysis: last,
			LookedUp: now.Unix(), TTL: ttl, Source: SourceVirusTotal}
		if link {
			v.Link = virustotal.FileLink(key)
		}
		if ttl <= 0 || ttl > 1<<40 {
			return // the decoder refuses ttl <= 0; past 2^40 s LookedUp+TTL could overflow
		}
		c := testCache(t, 4)
		defer c.close()
		c.put(key, &v, false, now)
		got, ok := c.get(key, now)
		switch {
		case ttl < expUnit && ok:
			t.Fatal("kept a verdict expiring within 16 s")
		case ttl < 2*expUnit:
			return // kept or not, by where the second ticks
		}
		if want := result(key, &v); !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v (%v), want %+v", got, ok, want)
		}
	})
}

// testCache returns a cache of size verdicts with its file under a
// temporary directory.
func testCache(t testing.TB, size int) *verdictCache {
	c := newVerdictCache(size, t.TempDir(), quietLog(), &metrics.Counter{})
	t.Cleanup(c.close)
	return c
}

// records counts the entries that are records.
func (c *verdictCache) records() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for i, k := range c.tab.keys {
		if k != 0 && c.tab.vals[i]>>kindShift&3 == kindRecord {
			n++
		}
	}
	return n
}
