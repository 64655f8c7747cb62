package proc

import (
	"math"
	"math/bits"
)

// pidIndex maps pids to LRU slot numbers: an open-addressing hash table
// with Robin Hood linear probing, one 8-byte cell per pid, never more than
// half full. A lookup usually touches one cache line (a Go map touches two
// or three), and the proc table looks pids up twice per exec event.
//
// Robin Hood order (along a probe run, no pid is further from its home
// cell than the pid after it, give or take the run's start) bounds the
// work by displacement, not by the length of a run of full cells: a lookup
// for an absent pid stops at the first pid closer to its home than the
// probe is, and removal shifts back only the displaced pids after the
// freed cell (no tombstones). With pids homed by value (see home), a
// machine that execs in a tight loop fills one long run of cells with every
// pid at its home, and an eviction or a miss still costs one or two cells.
//
// It starts small (minCells) and doubles when an add would make it more
// than half full, so its memory follows the pids held, up to twice the
// capacity it was made for (rounded up to a power of two). It holds at
// most that capacity; callers evict before adding past it. Only valid pids
// (see validPid) are stored. Not safe for concurrent use.
type pidIndex struct {
	cells    []pidCell
	maxCells int  // the size that holds the capacity at most half full
	stride   uint // log2 of the spacing of the pids this index sees
	n        int
}

// minCells is the size of a new index (128 bytes: two cache lines).
const minCells = 16

// pidCell is one cell; pid 0 marks it empty.
type pidCell struct {
	pid  int32
	slot int32
}

// validPid reports whether pid can be a kernel pid (1..2^31-1; Linux's
// PID_MAX_LIMIT is 2^22). Other values, which only malformed records
// carry, are never stored.
func validPid(pid int) bool { return pid > 0 && pid <= math.MaxInt32 }

// newPidIndex returns an index for capacity pids that are all congruent
// modulo stride (a power of two: the number of table shards).
func newPidIndex(capacity, stride int) pidIndex {
	size := minCells
	for size < 2*capacity {
		size <<= 1
	}
	return pidIndex{cells: make([]pidCell, minCells), maxCells: size, stride: uint(bits.TrailingZeros(uint(stride)))}
}

// home is the cell where pid's probe starts: the pid itself, over the
// stride, modulo the size. The kernel hands pids out in increasing order,
// so the pids a table holds are mostly one recent run: they fill
// neighbouring cells without colliding (the table has twice as many cells
// as pids), and an exec and the eviction it causes touch cache lines that
// the last execs touched.
func (x *pidIndex) home(pid int32) int {
	return int(uint32(pid)>>x.stride) & (len(x.cells) - 1)
}

// dist is how far cell i is from the home of the pid it holds.
func (x *pidIndex) dist(i int) int {
	return (i - x.home(x.cells[i].pid)) & (len(x.cells) - 1)
}

// find returns the cell holding pid and true, or false when pid is absent.
func (x *pidIndex) find(pid int32) (int, bool) {
	mask := len(x.cells) - 1
	for i, d := x.home(pid), 0; ; i, d = (i+1)&mask, d+1 {
		switch c := x.cells[i].pid; {
		case c == pid:
			return i, true
		case c == 0 || x.dist(i) < d:
			// An empty cell, or a pid nearer its home than pid would be
			// here: Robin Hood order puts pid before it.
			return i, false
		}
	}
}

// get returns the slot of pid.
func (x *pidIndex) get(pid int) (int32, bool) {
	if !validPid(pid) {
		return 0, false
	}
	i, ok := x.find(int32(pid))
	if !ok {
		return 0, false
	}
	return x.cells[i].slot, true
}

// put sets the slot of pid (a valid pid). Adding a pid to an index that
// holds its capacity already is a bug of the caller and panics.
func (x *pidIndex) put(pid int, slot int32) {
	if i, ok := x.find(int32(pid)); ok {
		x.cells[i].slot = slot
		return
	}
	if 2*(x.n+1) > len(x.cells) {
		if len(x.cells) >= x.maxCells {
			panic("proc: pidIndex over capacity")
		}
		x.grow()
	}
	x.n++
	x.insert(pidCell{pid: int32(pid), slot: slot})
}

// grow doubles the cells and puts every pid back in Robin Hood order.
func (x *pidIndex) grow() {
	old := x.cells
	x.cells = make([]pidCell, 2*len(old))
	for _, c := range old {
		if c.pid != 0 {
			x.insert(c)
		}
	}
}

// insert stores cur, a pid not held, in an index with room for it.
func (x *pidIndex) insert(cur pidCell) {
	// Walk from pid's home; take the cell of the first pid nearer its home
	// than the walker, and carry that pid on (Robin Hood insertion).
	mask := len(x.cells) - 1
	for i, d := x.home(cur.pid), 0; ; i, d = (i+1)&mask, d+1 {
		if x.cells[i].pid == 0 {
			x.cells[i] = cur
			return
		}
		if cd := x.dist(i); cd < d {
			x.cells[i], cur = cur, x.cells[i]
			d = cd
		}
	}
}

// remove forgets pid, then moves each displaced pid of the run after it
// back one cell, up to an empty cell or a pid at its home.
func (x *pidIndex) remove(pid int) {
	if !validPid(pid) {
		return
	}
	i, ok := x.find(int32(pid))
	if !ok {
		return
	}
	x.n--
	mask := len(x.cells) - 1
	for j := (i + 1) & mask; x.cells[j].pid != 0 && x.dist(j) > 0; j = (j + 1) & mask {
		x.cells[i] = x.cells[j]
		i = j
	}
	x.cells[i] = pidCell{}
}
