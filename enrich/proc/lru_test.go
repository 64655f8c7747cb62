package proc

import "testing"

// add sets the entry of pid, reporting an eviction.
func (l *pidLRU) add(pid int, e entry) bool {
	_, evicted := l.Update(pid, func(entry, bool) (entry, bool) { return e, true })
	return evicted
}

// peek returns the entry of pid without marking it used.
func (l *pidLRU) peek(pid int) (entry, bool) {
	i, ok := l.index.get(pid)
	if !ok {
		return entry{}, false
	}
	return l.slots[i].e, true
}

// pidLRU evicts the least recently used pid: Get and Add mark use, Peek
// does not; removed slots are reused.
func TestPidLRU(t *testing.T) {
	l := newPidLRU(3, 1)
	e := func(ms int64) entry { return entry{expires: uint32(ms)} }
	for pid := 1; pid <= 3; pid++ {
		if l.add(pid, e(int64(pid))) {
			t.Fatalf("eviction while filling (pid %d)", pid)
		}
	}
	l.Get(1)  // order now 1, 3, 2 (most recent first)
	l.peek(2) // no change
	if !l.add(4, e(4)) {
		t.Fatal("no eviction when full")
	}
	if _, ok := l.peek(2); ok {
		t.Error("pid 2 (least recently used) not evicted")
	}
	if got, ok := l.peek(1); !ok || got.expires != 1 {
		t.Errorf("pid 1 = %v %v", got, ok)
	}
	if l.add(3, e(33)) { // update in place
		t.Error("update evicted")
	}
	if got, _ := l.Get(3); got.expires != 33 {
		t.Errorf("updated pid 3 = %v", got)
	}
	l.Remove(1)
	l.Remove(99)
	if l.Len() != 2 {
		t.Fatalf("Len %d after Remove, want 2", l.Len())
	}
	slots := len(l.slots)
	if l.add(5, e(5)) || len(l.slots) != slots {
		t.Errorf("removed slot not reused: %d slots, was %d", len(l.slots), slots)
	}
	// Order is 5, 3, 4: adding two more evicts 4, then 3.
	l.add(6, e(6))
	if _, ok := l.peek(4); ok {
		t.Error("pid 4 not evicted")
	}
	l.add(7, e(7))
	if _, ok := l.peek(3); ok {
		t.Error("pid 3 not evicted")
	}
	for _, pid := range []int{5, 6, 7} {
		if _, ok := l.peek(pid); !ok {
			t.Errorf("pid %d missing", pid)
		}
	}
	// One slot left: the list stays consistent when head == tail.
	one := newPidLRU(1, 1)
	one.add(1, e(1))
	one.add(2, e(2))
	one.Remove(2)
	one.add(3, e(3))
	if got, ok := one.Get(3); !ok || got.expires != 3 || one.Len() != 1 {
		t.Errorf("capacity 1: %v %v len %d", got, ok, one.Len())
	}
}

// A sharded table holds at most MaxEntries pids in all, and evicts one pid
// per pid recorded beyond that when the pids spread over the shards.
func TestShardedBound(t *testing.T) {
	const size = minShardEntries * maxShards
	tb, err := New(Config{Enabled: true, MaxEntries: size + 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.shards) != maxShards {
		t.Fatalf("%d shards, want %d", len(tb.shards), maxShards)
	}
	const n = 3 * size
	for pid := 1; pid <= n; pid++ {
		tb.Record(pid, Image{Exe: "/x", StartMilli: int64(pid)})
	}
	st := tb.Stats()
	if st.Len != size+3 || st.Evictions != n-(size+3) {
		t.Errorf("Len %d (want %d), Evictions %d (want %d)", st.Len, size+3, st.Evictions, n-(size+3))
	}
	// The most recent pids are all there.
	for pid := n - 100; pid <= n; pid++ {
		if _, ok := tb.Lookup(pid, 0); !ok {
			t.Fatalf("recent pid %d evicted", pid)
		}
	}
}

// Update sees the current entry, and leaves the table alone when told to.
func TestPidLRUUpdate(t *testing.T) {
	l := newPidLRU(2, 1)
	l.add(1, entry{expires: 1})
	l.add(2, entry{expires: 2}) // order: 2, 1
	if _, evicted := l.Update(3, func(old entry, ok bool) (entry, bool) {
		if ok {
			t.Errorf("pid 3 found: %v", old)
		}
		return entry{}, false
	}); evicted || l.Len() != 2 {
		t.Fatalf("a declined update changed the table (len %d)", l.Len())
	}
	if _, ok := l.peek(1); !ok {
		t.Fatal("a declined update evicted pid 1")
	}
	l.Update(1, func(old entry, ok bool) (entry, bool) {
		if !ok || old.expires != 1 {
			t.Errorf("pid 1: %v %v", old, ok)
		}
		return entry{expires: old.expires + 10}, true
	}) // order: 1, 2
	if got, _ := l.peek(1); got.expires != 11 {
		t.Errorf("pid 1 = %v after update", got)
	}
	// The evicted entry is handed back (its images are the caller's to free).
	if gone, evicted := l.Update(4, func(entry, bool) (entry, bool) { return entry{expires: 4}, true }); !evicted || gone.expires != 2 {
		t.Errorf("eviction when full: %v, entry %v (want pid 2's)", evicted, gone)
	}
	l.Remove(1)
	if e, ok := l.peek(1); ok {
		t.Errorf("pid 1 = %v after Remove", e)
	}
	if _, ok := l.peek(2); ok {
		t.Error("pid 2 (least recently used) kept")
	}
}

// The slots grow by doubling but never past the capacity, whatever size
// classes the runtime rounds to.
func TestLRUSlotsBounded(t *testing.T) {
	for _, c := range []int{1, 100, 1000, 1500, 2048, 5000} {
		l := newPidLRU(c, 1)
		for pid := 1; pid <= c+10; pid++ {
			l.add(pid, entry{})
			if cap(l.slots) > c {
				t.Fatalf("capacity %d: %d slots allocated after %d pids", c, cap(l.slots), pid)
			}
		}
		if len(l.slots) != c {
			t.Errorf("capacity %d: %d slots in use when full", c, len(l.slots))
		}
	}
}
