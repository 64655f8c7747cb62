package fleet

import "math/bits"

// table is an open-addressed hash table from uint64 keys (0 is no key) to
// uint32 values, in two arrays (12 bytes a slot): linear probing, and
// deletion by backward shift, so there are no tombstones and a look-up
// stops at the first empty slot. Keys must be uniformly distributed (MAC
// or seeded hash outputs): a key's first slot is its fraction of the
// table's size, so the size need not be a power of two. Not safe for
// concurrent use; the caller keeps the load under 1.
type table struct {
	keys []uint64
	vals []uint32
	n    int
}

// home is the first slot tried for k.
func (t *table) home(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(t.keys)))
	return int(hi)
}

func (t *table) next(i int) int {
	if i++; i == len(t.keys) {
		return 0
	}
	return i
}

// find returns the slot holding k, or -1.
func (t *table) find(k uint64) int {
	for i := t.home(k); ; i = t.next(i) {
		switch t.keys[i] {
		case k:
			return i
		case 0:
			return -1
		}
	}
}

// insert puts k, which the table does not hold, and v in the first free
// slot from k's home. The table must have a free slot.
func (t *table) insert(k uint64, v uint32) {
	i := t.home(k)
	for t.keys[i] != 0 {
		i = t.next(i)
	}
	t.keys[i], t.vals[i] = k, v
	t.n++
}

// delete empties slot i and shifts back the entries after it that probed
// past it. The entry moved into slot i, if any, is one the caller has not
// visited when it sweeps the slots in order.
func (t *table) delete(i int) {
	t.n--
	for j := t.next(i); t.keys[j] != 0; j = t.next(j) {
		// The entry at j moves to i unless its home is cyclically in (i, j].
		h := t.home(t.keys[j])
		if (i < j && (h <= i || h > j)) || (i > j && h <= i && h > j) {
			t.keys[i], t.vals[i] = t.keys[j], t.vals[j]
			i = j
		}
	}
	t.keys[i], t.vals[i] = 0, 0
}

// resize moves the entries to a table of size slots (at least n+1).
func (t *table) resize(size int) {
	keys, vals := t.keys, t.vals
	t.keys, t.vals, t.n = make([]uint64, size), make([]uint32, size), 0
	for i, k := range keys {
		if k != 0 {
			t.insert(k, vals[i])
		}
	}
}
