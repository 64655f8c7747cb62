package proc

// pidLRU is a fixed-capacity map from pid to entry that evicts the least
// recently used pid. It holds no pointers: the slots live in one slice,
// linked by index, the index is a pidIndex, and an entry names its images
// by block number in its shard's arena, so the garbage collector has
// nothing to scan in it. Pids outside 1..MaxInt32 (no
// kernel makes them) are never stored: Update ignores them. Not safe for
// concurrent use (the Table locks around it).
type pidLRU struct {
	index      pidIndex // pid → slot
	slots      []lruSlot
	head, tail int32 // most and least recently used slot; -1 when empty
	free       int32 // a removed slot to reuse (linked by next); -1 none
	capacity   int
}

// lruSlot is one pid's slot: 28 bytes, so that the slots of a full
// table of the default size take 448 KiB.
type lruSlot struct {
	pid        int32
	prev, next int32
	e          entry
}

// newPidLRU returns an empty LRU for capacity pids that are all congruent
// modulo stride (a power of two; see newPidIndex).
func newPidLRU(capacity, stride int) *pidLRU {
	return &pidLRU{index: newPidIndex(capacity, stride), head: -1, tail: -1, free: -1, capacity: capacity}
}

// Len returns the number of pids held.
func (l *pidLRU) Len() int { return l.index.n }

// Get returns the entry of pid and marks it most recently used.
func (l *pidLRU) Get(pid int) (entry, bool) {
	i, ok := l.index.get(pid)
	if !ok {
		return entry{}, false
	}
	l.toFront(i)
	return l.slots[i].e, true
}

// Update sets the entry of pid to what f returns, given the current entry
// (and whether there is one), with one index lookup; f returning false
// leaves the table as it was. A set entry is marked most recently used.
// Update returns the entry of the pid it evicted to make room, if any.
func (l *pidLRU) Update(pid int, f func(old entry, ok bool) (entry, bool)) (gone entry, evicted bool) {
	if !validPid(pid) {
		return entry{}, false
	}
	i, ok := l.index.get(pid)
	var old entry
	if ok {
		old = l.slots[i].e
	}
	e, set := f(old, ok)
	if !set {
		return entry{}, false
	}
	if ok {
		l.slots[i].e = e
		l.toFront(i)
		return entry{}, false
	}
	switch {
	case l.index.n >= l.capacity:
		i = l.tail
		gone, evicted = l.slots[i].e, true
		l.index.remove(int(l.slots[i].pid))
		l.unlink(i)
	case l.free >= 0:
		i = l.free
		l.free = l.slots[i].next
	default:
		if len(l.slots) == cap(l.slots) {
			// Double (append grows large slices by a quarter, copying
			// them more often, and rounds up to a size class), but never
			// past the capacity.
			grown := make([]lruSlot, len(l.slots), min(max(2*len(l.slots), 16), l.capacity))
			copy(grown, l.slots)
			l.slots = grown
		}
		l.slots = append(l.slots, lruSlot{})
		i = int32(len(l.slots) - 1)
	}
	l.slots[i] = lruSlot{pid: int32(pid), prev: -1, next: -1, e: e}
	l.index.put(pid, i)
	l.pushFront(i)
	return gone, evicted
}

// Remove forgets pid.
func (l *pidLRU) Remove(pid int) {
	i, ok := l.index.get(pid)
	if !ok {
		return
	}
	l.index.remove(pid)
	l.unlink(i)
	l.slots[i] = lruSlot{prev: -1, next: l.free}
	l.free = i
}

func (l *pidLRU) toFront(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

func (l *pidLRU) pushFront(i int32) {
	s := &l.slots[i]
	s.prev, s.next = -1, l.head
	if l.head >= 0 {
		l.slots[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

func (l *pidLRU) unlink(i int32) {
	s := &l.slots[i]
	if s.prev >= 0 {
		l.slots[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next >= 0 {
		l.slots[s.next].prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = -1, -1
}
