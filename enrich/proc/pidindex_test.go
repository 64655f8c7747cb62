package proc

import (
	"math"
	"math/rand/v2"
	"testing"
)

// pidIndex agrees with a Go map over a long random run of puts, removes
// and gets at full capacity, with pids dense (as the kernel hands them out)
// and sparse, and never stores an invalid pid.
func TestPidIndexMatchesMap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int
		stride   int
		pid      func(r *rand.Rand) int
	}{
		{"dense", 64, 1, func(r *rand.Rand) int { return 1 + r.IntN(200) }},
		{"sparse", 64, 1, func(r *rand.Rand) int { return 1 + r.IntN(math.MaxInt32) }},
		{"one", 1, 1, func(r *rand.Rand) int { return 1 + r.IntN(5) }},
		// Every pid has the same home: one long run that wraps around.
		{"colliding", 40, 1, func(r *rand.Rand) int { return 128 * (1 + r.IntN(100)) }},
		// A shard of eight: pids congruent to 3 modulo 8.
		{"sharded", 2048, 8, func(r *rand.Rand) int { return 3 + 8*r.IntN(6000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.capacity)))
			x := newPidIndex(tc.capacity, tc.stride)
			ref := map[int]int32{}
			for op := 0; op < 200000; op++ {
				pid := tc.pid(rng)
				switch rng.IntN(3) {
				case 0:
					if _, ok := ref[pid]; ok || len(ref) < tc.capacity {
						ref[pid] = int32(op)
						x.put(pid, int32(op))
					}
				case 1:
					delete(ref, pid)
					x.remove(pid)
				}
				got, ok := x.get(pid)
				want, wok := ref[pid]
				if ok != wok || got != want {
					t.Fatalf("op %d: get(%d) = %d %v, want %d %v", op, pid, got, ok, want, wok)
				}
				if x.n != len(ref) {
					t.Fatalf("op %d: n = %d, want %d", op, x.n, len(ref))
				}
			}
			for pid, want := range ref {
				if got, ok := x.get(pid); !ok || got != want {
					t.Fatalf("final get(%d) = %d %v, want %d", pid, got, ok, want)
				}
			}
		})
	}
	x := newPidIndex(4, 1)
	for _, pid := range []int{0, -1, math.MaxInt32 + 1} {
		if _, ok := x.get(pid); ok {
			t.Errorf("get(%d) found", pid)
		}
		x.remove(pid) // no-op, no panic
	}
	l := newPidLRU(2, 1)
	if l.add(0, entry{}) || l.add(-5, entry{}) || l.add(math.MaxInt32+1, entry{}) || l.Len() != 0 {
		t.Errorf("invalid pids stored: len %d", l.Len())
	}
}

func BenchmarkPidIndex(b *testing.B) {
	x := newPidIndex(2048, 1)
	for pid := 1; pid <= 2048; pid++ {
		x.put(pid*8, int32(pid))
	}
	b.ResetTimer()
	for i := range b.N {
		pid := (1 + i%2048) * 8
		if _, ok := x.get(pid); !ok {
			b.Fatal("missing")
		}
	}
}
