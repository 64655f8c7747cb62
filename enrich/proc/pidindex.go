package proc

import (
	"math"
	"math/bits"
)

// pidIndex maps pids to LRU slot numbers: an open-addressing hash table
// with linear probing, one 8-byte cell per pid, never more than half full.
// A lookup usually touches one cache line (a Go map touches two or three),
// and the proc table looks pids up twice per exec event. Removal shifts the
// rest of the probe run back instead of leaving tombstones, so lookups stay
// short however long the table churns.
//
// It holds at most the capacity it was made for; callers evict before
// adding past it. Only valid pids (see validPid) are stored. Not safe for
// concurrent use.
type pidIndex struct {
	cells  []pidCell
	stride uint // log2 of the spacing of the pids this index sees
	n      int
}

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
	size := 8
	for size < 2*capacity {
		size <<= 1
	}
	return pidIndex{cells: make([]pidCell, size), stride: uint(bits.TrailingZeros(uint(stride)))}
}

// home is the cell where pid's probe starts: the pid itself, over the
// stride, modulo the size. The kernel hands pids out in increasing order,
// so the pids a table holds are mostly one recent run: they fill
// neighbouring cells without colliding (the table has twice as many cells
// as pids), an exec and the eviction it causes touch cache lines that the
// last execs touched, and a lookup rarely probes past its home.
func (x *pidIndex) home(pid int32) int {
	return int(uint32(pid)>>x.stride) & (len(x.cells) - 1)
}

// find returns the cell holding pid, or the empty cell where its probe
// ends, and whether pid is there.
func (x *pidIndex) find(pid int32) (int, bool) {
	mask := len(x.cells) - 1
	for i := x.home(pid); ; i = (i + 1) & mask {
		switch x.cells[i].pid {
		case pid:
			return i, true
		case 0:
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
	return x.cells[i].slot, ok
}

// put sets the slot of pid (a valid pid). Adding a pid to an index that
// holds its capacity already is a bug of the caller and panics.
func (x *pidIndex) put(pid int, slot int32) {
	i, ok := x.find(int32(pid))
	if !ok {
		if 2*(x.n+1) > len(x.cells) {
			panic("proc: pidIndex over capacity")
		}
		x.n++
	}
	x.cells[i] = pidCell{pid: int32(pid), slot: slot}
}

// remove forgets pid, then moves back the cells after it in the probe run
// whose home lies at or before the freed cell (backward-shift deletion).
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
	for j := (i + 1) & mask; x.cells[j].pid != 0; j = (j + 1) & mask {
		// The cell at j may move to i if its probe passes i: its home is
		// cyclically outside (i, j].
		h := x.home(x.cells[j].pid)
		if (j-h)&mask >= (j-i)&mask {
			x.cells[i] = x.cells[j]
			i = j
		}
	}
	x.cells[i] = pidCell{}
}
