package fleet

import "math/bits"

// table is an open-addressed hash table from uint64 keys (0 is no key) to
// uint64 values, in two arrays (16 bytes a slot), with Robin Hood linear
// probing: an insert takes the slot of an entry closer to its home than
// the new one is to its own (and carries that entry on), so a look-up
// stops at an empty slot or at an entry closer to its home than the key
// would be, and probe lengths stay short at load 0.95. Deletion shifts the
// following entries back (no tombstones). Keys must be uniformly
// distributed (MAC or seeded hash outputs): a key's home slot is its
// fraction of the table's size, so the size need not be a power of two.
// Not safe for concurrent use; the caller keeps the load under 1.
type table struct {
	keys []uint64
	vals []uint64
	n    int
}

// home is the first slot tried for k.
func (t *table) home(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(t.keys)))
	return int(hi)
}

// dist is how many slots past its home slot i is for key k.
func (t *table) dist(i int, k uint64) int {
	d := i - t.home(k)
	if d < 0 {
		d += len(t.keys)
	}
	return d
}

func (t *table) next(i int) int {
	if i++; i == len(t.keys) {
		return 0
	}
	return i
}

// find returns the slot holding k, or -1.
func (t *table) find(k uint64) int {
	for i, d := t.home(k), 0; ; i, d = t.next(i), d+1 {
		switch x := t.keys[i]; {
		case x == k:
			return i
		case x == 0 || t.dist(i, x) < d:
			return -1
		}
	}
}

// insert adds k, which the table does not hold, with value v. The table
// must have a free slot. Entries after k's home may move one slot on.
func (t *table) insert(k uint64, v uint64) {
	t.n++
	for i, d := t.home(k), 0; ; i, d = t.next(i), d+1 {
		x := t.keys[i]
		if x == 0 {
			t.keys[i], t.vals[i] = k, v
			return
		}
		if xd := t.dist(i, x); xd < d {
			t.keys[i], k = k, x
			t.vals[i], v = v, t.vals[i]
			d = xd
		}
	}
}

// delete empties slot i and shifts the following entries that are past
// their home back by one, so the entry that was in slot i+1 (if any) is
// now in slot i.
func (t *table) delete(i int) {
	t.n--
	for j := t.next(i); t.keys[j] != 0 && t.dist(j, t.keys[j]) > 0; i, j = j, t.next(j) {
		t.keys[i], t.vals[i] = t.keys[j], t.vals[j]
	}
	t.keys[i], t.vals[i] = 0, 0
}

// resize moves the entries to a table of size slots (at least n+1).
func (t *table) resize(size int) {
	keys, vals := t.keys, t.vals
	t.keys, t.vals, t.n = make([]uint64, size), make([]uint64, size), 0
	for i, k := range keys {
		if k != 0 {
			t.insert(k, vals[i])
		}
	}
}
