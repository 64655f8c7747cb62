package blocklist

import (
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// checkIndex verifies the invariants of every table: sorted, unique,
// buckets consistent, labels in range, and each entry found by lookup.
func checkIndex(t testing.TB, ix *index) {
	t.Helper()
	for a := range ix.tables {
		checkTable(t, &ix.tables[a], len(ix.labels))
	}
	if len(ix.labels) == 0 || ix.labels[0] != "" {
		t.Fatalf("label 0 is %q, want empty", ix.labels)
	}
}

func checkTable[K key[K]](t testing.TB, tb *table[K], nlabels int) {
	t.Helper()
	if tb.n == 0 {
		if len(tb.slots) != 0 {
			t.Fatalf("empty table with %d slots", len(tb.slots))
		}
		return
	}
	if len(tb.filter)*64 != 1<<tb.filterBits || 1<<tb.filterBits < min(filterBitsPerKey*tb.n, 1<<maxFilterBits) {
		t.Fatalf("%d keys, filter of %d bits", tb.n, len(tb.filter)*64)
	}
	if len(tb.slots) < int(tb.homes) || uint64(tb.n) >= tb.homes {
		t.Fatalf("%d keys, %d homes, %d slots", tb.n, tb.homes, len(tb.slots))
	}
	n, prev := 0, -1
	for i, e := range tb.slots {
		if e.label == freeSlot {
			continue
		}
		n++
		if prev >= 0 && tb.slots[prev].k.compare(e.k) >= 0 {
			t.Fatalf("slot %d not above slot %d", i, prev)
		}
		prev = i
		h := tb.home(e.k)
		if h > i {
			t.Fatalf("slot %d holds a key whose home is %d", i, h)
		}
		for j := h; j < i; j++ {
			if tb.slots[j].label == freeSlot {
				t.Fatalf("free slot %d between home %d and slot %d", j, h, i)
			}
		}
		if !tb.mayHave(e.k) {
			t.Fatalf("slot %d: key not in the filter", i)
		}
		if int(e.label) >= nlabels {
			t.Fatalf("slot %d has label %d of %d", i, e.label, nlabels)
		}
		if l, ok := tb.find(e.k); !ok || l != e.label {
			t.Fatalf("slot %d not found by find", i)
		}
	}
	if n != tb.n {
		t.Fatalf("%d keys in slots, n = %d", n, tb.n)
	}
}

// TestIndexAgainstMap builds indexes of many sizes from random digests of
// all four algorithms (with duplicates) and compares every lookup with a map.
func TestIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 7, 8, 9, 100, 5000, 70000}
	if testing.Short() {
		// The 70000-entry index takes over a minute under -race on a busy
		// 2-core machine; the smaller ones already cross the table growth.
		sizes = sizes[:len(sizes)-1]
	}
	for _, n := range sizes {
		b := newBuilder(0)
		want := map[string]string{}
		var present []string
		for i := range n {
			algo := rng.IntN(numAlgos)
			var raw [64]byte
			for j := range raw {
				raw[j] = byte(rng.Uint32())
			}
			if i%10 == 0 {
				raw[0], raw[1], raw[2], raw[3] = 0, 0, 0, byte(i) // share a prefix (tags do not)
			}
			h := hex.EncodeToString(raw[:algoBytes[algo]])
			if i%7 == 3 && len(present) > 0 {
				h = present[rng.IntN(len(present))] // duplicate
			}
			label := "fam" + string(rune('a'+i%5))
			var d digest
			if !parseDigest(h, &d) {
				t.Fatalf("bad generated digest %q", h)
			}
			b.add(&d, b.label([]byte(label)))
			// Labels are interned in lexical order here, so the label kept
			// for a duplicate is the smallest.
			if old, dup := want[h]; !dup {
				want[h] = label
				present = append(present, h)
			} else if label < old {
				want[h] = label
			}
		}
		ix := b.build()
		checkIndex(t, ix)
		if ix.len() != len(want) {
			t.Fatalf("n=%d: index holds %d digests, want %d", n, ix.len(), len(want))
		}
		if want := 1 + min(n, 5); len(ix.labels) != want {
			t.Fatalf("n=%d: %d labels interned, want %d", n, len(ix.labels), want)
		}
		for h, label := range want {
			if got, ok := lookupHex(t, ix, h); !ok || got != label {
				t.Fatalf("n=%d: lookup %s = %q, %v; want %q", n, h, got, ok, label)
			}
		}
		for range 1000 {
			var raw [64]byte
			for j := range raw {
				raw[j] = byte(rng.Uint32())
			}
			h := hex.EncodeToString(raw[:algoBytes[rng.IntN(numAlgos)]])
			if _, in := want[h]; in {
				continue
			}
			if _, ok := lookupHex(t, ix, h); ok {
				t.Fatalf("n=%d: absent %s found", n, h)
			}
		}
	}
}

// algoBytes is the digest size of each list algorithm.
var algoBytes = [numAlgos]int{16, 20, 32, 64}

func TestParseDigest(t *testing.T) {
	tests := []struct {
		in   string
		algo int
		ok   bool
	}{
		{aMD5, algoMD5, true},
		{strings.ToUpper(aSHA1), algoSHA1, true},
		{"sha256:" + aSHA256, algoSHA256, true},
		{"sha512:" + aSHA512, algoSHA512, true},
		{"SHA256:" + aSHA256, algoSHA256, true},
		{"md5:" + aSHA1, 0, false},
		{"sha224:" + aSHA256[:56], 0, false},
		{aSHA256[:62] + "g0", 0, false},
		{aSHA256[:63], 0, false},
		{"", 0, false},
		{":", 0, false},
	}
	for _, tt := range tests {
		var d digest
		ok := parseDigest(tt.in, &d)
		if ok != tt.ok || ok && d.algo != tt.algo {
			t.Errorf("parseDigest(%q) = algo %d, %v; want %d, %v", tt.in, d.algo, ok, tt.algo, tt.ok)
		}
		if ok {
			h := tt.in[strings.IndexByte(tt.in, ':')+1:]
			if got := hex.EncodeToString(d.b[:algoBytes[d.algo]]); got != strings.ToLower(h) {
				t.Errorf("parseDigest(%q) decoded %s", tt.in, got)
			}
		}
	}
}

// writeRandomList writes n random sha256 lines and returns the path and
// the digests.
func writeRandomList(b *testing.B, n int) (string, [][32]byte) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "1m.txt")
	rng := rand.New(rand.NewPCG(7, 11))
	keys := make([][32]byte, n)
	buf := make([]byte, 0, 65*n)
	for i := range keys {
		for j := 0; j < 32; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				keys[i][j+k] = byte(v >> (8 * k))
			}
		}
		buf = hex.AppendEncode(buf, keys[i][:])
		buf = append(buf, '\n')
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	return path, keys
}

// BenchmarkLoad1M loads a 1M-line plain sha256 list (65 MB). It reports the
// heap the loaded index retains (heap-MB, B/entry, measured with
// runtime.ReadMemStats after a GC with the index alive) and everything
// allocated while loading (alloc-MB, an upper bound of the peak).
func BenchmarkLoad1M(b *testing.B) {
	const n = 1_000_000
	path, _ := writeRandomList(b, n)
	lc := ListConfig{Name: "bench", Path: path}
	var retained, allocated uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		ix, _, err := loadFile(&lc)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if ix.len() != n {
			b.Fatalf("%d entries loaded", ix.len())
		}
		retained = after.HeapAlloc - before.HeapAlloc
		allocated = after.TotalAlloc - before.TotalAlloc
		runtime.KeepAlive(ix)
		b.StartTimer()
	}
	b.ReportMetric(float64(retained)/(1<<20), "heap-MB")
	b.ReportMetric(float64(retained)/n, "B/entry")
	b.ReportMetric(float64(allocated)/(1<<20), "alloc-MB")
}

// BenchmarkLookup looks up random digests in a 1M-entry sha256 index. The
// probes are spread over the whole table, so the figures include the cache
// and TLB misses a real lookup meets. Besides the wall-clock ns/op it
// reports cpu-ns/op, the CPU time of the benchmark's thread, which stays
// meaningful on a machine busy with other work.
//   - hex-mixed: half present, from the lower-case hex an event carries (hex
//     decoding included), which is what Enrich does per hash and list;
//   - present, absent: the table probe alone, from decoded digests; absent
//     ones are fresh random digests, as most executed files' are.
//
// A present digest costs one memory access to the table, so its figure is
// bounded below by the machine's memory latency; an absent one is mostly
// answered by the in-cache filter.
func BenchmarkLookup(b *testing.B) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(3, 4))
	bl := newBuilder(n)
	const np = 1 << 16
	var present, absent []digest
	for i := range n {
		var d digest
		d.algo = algoSHA256
		for j := 0; j < 32; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				d.b[j+k] = byte(v >> (8 * k))
			}
		}
		d.setKey(32)
		bl.add(&d, 0)
		if i < np {
			present = append(present, d)
		}
	}
	for range np {
		// Fresh random digests: absent (all but a 2^-256 chance).
		var d digest
		d.algo = algoSHA256
		for j := 0; j < 32; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				d.b[j+k] = byte(v >> (8 * k))
			}
		}
		d.setKey(32)
		absent = append(absent, d)
	}
	ix := bl.build()
	rng.Shuffle(np, func(i, j int) { present[i], present[j] = present[j], present[i] })
	rng.Shuffle(np, func(i, j int) { absent[i], absent[j] = absent[j], absent[i] })
	hexes := make([]string, np)
	for i := range hexes {
		d := &present[i]
		if i%2 == 1 {
			d = &absent[i]
		}
		hexes[i] = hex.EncodeToString(d.b[:32])
	}
	run := func(name string, want float64, probe func(i int) bool) {
		b.Run(name, func(b *testing.B) {
			defer threadCPU(b)()
			found := 0
			for i := range b.N {
				if probe(i & (np - 1)) {
					found++
				}
			}
			if got := float64(found) / float64(b.N); b.N >= np && (got < want-0.02 || got > want+0.02) {
				b.Fatalf("found %.3f of the probes, want %.2f", got, want)
			}
		})
	}
	run("hex-mixed", 0.5, func(i int) bool {
		var d digest
		if !parseDigest(hexes[i], &d) {
			return false
		}
		_, ok := ix.lookup(&d)
		return ok
	})
	run("present", 1, func(i int) bool { _, ok := ix.lookup(&present[i]); return ok })
	run("absent", 0, func(i int) bool { _, ok := ix.lookup(&absent[i]); return ok })
}

// threadCPU pins the benchmark to its OS thread and returns a function that
// reports the thread's CPU time per op as cpu-ns/op.
func threadCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadTime(b)
	return func() {
		b.ReportMetric(float64(threadTime(b)-start)/float64(b.N), "cpu-ns/op")
		runtime.UnlockOSThread()
	}
}

func threadTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
