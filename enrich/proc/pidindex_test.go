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
				if op%997 == 0 {
					checkRobinHood(t, &x)
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
	tooBig := int64(math.MaxInt32) + 1
	for _, pid := range []int{0, -1, int(tooBig)} {
		if _, ok := x.get(pid); ok {
			t.Errorf("get(%d) found", pid)
		}
		x.remove(pid) // no-op, no panic
	}
	l := newPidLRU(2, 1)
	if l.add(0, entry{}) || l.add(-5, entry{}) || l.add(int(tooBig), entry{}) || l.Len() != 0 {
		t.Errorf("invalid pids stored: len %d", l.Len())
	}
}

// checkRobinHood checks the index's invariants: n counts the full cells,
// and along a probe run no pid is more than one cell further from its home
// than the pid before it (a displaced pid never follows an empty cell).
func checkRobinHood(t *testing.T, x *pidIndex) {
	t.Helper()
	full := 0
	for i, c := range x.cells {
		if c.pid == 0 {
			continue
		}
		full++
		if d := x.dist(i); d > 0 {
			prev := (i - 1) & (len(x.cells) - 1)
			if x.cells[prev].pid == 0 || x.dist(prev) < d-1 {
				t.Fatalf("cell %d (pid %d) is %d from home after cell %d (pid %d)", i, c.pid, d, prev, x.cells[prev].pid)
			}
		}
	}
	if full != x.n {
		t.Fatalf("%d full cells, n = %d", full, x.n)
	}
}

// longestDisplacedRun is the most consecutive cells holding pids away from
// their homes: what a removal shifts back, and about what a lookup for an
// absent pid reads, at the most.
func longestDisplacedRun(x *pidIndex) int {
	longest, run := 0, 0
	for i := 0; i < 2*len(x.cells); i++ { // twice round: runs wrap
		j := i & (len(x.cells) - 1)
		if x.cells[j].pid != 0 && x.dist(j) > 0 {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return min(longest, len(x.cells))
}

// A machine that execs in a tight loop hands out every pid in turn: the
// table holds one long run of full cells, each pid at its home. Evicting the
// oldest and adding the next, as the LRU does on every exec, must keep the
// work per operation small, not proportional to the run (the first version
// scanned the whole run on every eviction).
func TestPidIndexDenseChurn(t *testing.T) {
	for _, stride := range []int{1, 8} {
		const capacity = 2048
		x := newPidIndex(capacity, stride)
		pid := func(k int) int { return 3 + stride*k }
		for k := 0; k < capacity; k++ {
			x.put(pid(k), int32(k))
		}
		for k := capacity; k < 20*capacity; k++ {
			x.remove(pid(k - capacity))
			x.put(pid(k), int32(k))
			if _, ok := x.get(pid(k - capacity)); ok {
				t.Fatalf("stride %d: evicted pid %d still found", stride, pid(k-capacity))
			}
		}
		checkRobinHood(t, &x)
		if run := longestDisplacedRun(&x); run > 0 {
			t.Errorf("stride %d: %d consecutive displaced cells after dense churn, want 0", stride, run)
		}
		// A pid that is not held but shares the home of a held one (an old
		// parent, a /proc fallback) is found absent within two cells, not
		// at the end of the run.
		for k := 19 * capacity; k < 20*capacity; k += 97 {
			absent := pid(k) + stride*len(x.cells)
			home := x.home(int32(absent))
			i, ok := x.find(int32(absent))
			if ok || (i-home)&(len(x.cells)-1) > 1 {
				t.Fatalf("stride %d: absent pid %d (home %d) probed to cell %d (found %v)", stride, absent, home, i, ok)
			}
		}
		// Old parents that stay (hot in the LRU) among the churn: their
		// cells are taken by new pids whose home they hold, which get
		// displaced one cell each, never in long runs.
		held := make([]int, 0, capacity) // LRU order, oldest first
		for k := 19 * capacity; k < 20*capacity; k++ {
			held = append(held, pid(k))
		}
		for k := 20 * capacity; k < 40*capacity; k++ {
			if k%64 == 0 { // a parent used again: it moves to the back
				held = append(held[1:], held[0])
			}
			x.remove(held[0])
			held = append(held[1:], pid(k))
			x.put(pid(k), int32(k))
		}
		checkRobinHood(t, &x)
		if run := longestDisplacedRun(&x); run > 4 {
			t.Errorf("stride %d: %d consecutive displaced cells with long-lived pids, want <= 4", stride, run)
		}
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

// An index starts at minCells and doubles as pids arrive, to exactly the
// size its capacity needs at most half full, keeping every pid; past the
// capacity, put panics (the LRU evicts first).
func TestPidIndexGrows(t *testing.T) {
	const capacity, stride = 2048, 8
	x := newPidIndex(capacity, stride)
	if len(x.cells) != minCells {
		t.Fatalf("new index has %d cells, want %d", len(x.cells), minCells)
	}
	pid := func(k int) int { return 5 + stride*k }
	for k := 0; k < capacity; k++ {
		x.put(pid(k), int32(k))
		if 2*x.n > len(x.cells) {
			t.Fatalf("%d pids in %d cells: more than half full", x.n, len(x.cells))
		}
		if k == 99 && len(x.cells) != 256 {
			t.Fatalf("100 pids in %d cells, want 256", len(x.cells))
		}
	}
	if len(x.cells) != 2*capacity {
		t.Fatalf("full index has %d cells, want %d", len(x.cells), 2*capacity)
	}
	checkRobinHood(t, &x)
	for k := 0; k < capacity; k++ {
		if got, ok := x.get(pid(k)); !ok || got != int32(k) {
			t.Fatalf("get(%d) = %d %v after growth, want %d", pid(k), got, ok, k)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("put past capacity did not panic")
		}
	}()
	x.put(pid(capacity), 0)
}
