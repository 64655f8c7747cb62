package proc

import (
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"
	"weak"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// checkArena checks a table's arenas block by block: every block made is
// either in the chain of exactly one image the table holds or on the free
// list, and every view is of a held image.
// It finds a leak (a block neither held nor free) and a double free.
func checkArena(t *testing.T, tb *Table) {
	t.Helper()
	for s := range tb.shards {
		sh := &tb.shards[s]
		sh.mu.Lock()
		a := &sh.arena
		owner := map[uint32]string{}
		claim := func(b uint32, who string) {
			if prev, ok := owner[b]; ok {
				t.Errorf("shard %d: block %d in %s and %s", s, b, prev, who)
			}
			owner[b] = who
		}
		heads := map[uint32]bool{}
		for _, c := range sh.lru.index.cells {
			if c.pid == 0 {
				continue
			}
			e := sh.lru.slots[c.slot].e
			for _, h := range e.img[:e.n] {
				heads[h] = true
				for b := h; b != 0; b = a.links[b] {
					claim(b, fmt.Sprintf("image of pid %d", c.pid))
				}
			}
		}
		for b := a.free; b != 0; b = a.links[b] {
			claim(b, "the free list")
		}
		if a.next > 0 && len(owner) != int(a.next)-1 {
			t.Errorf("shard %d: %d blocks made, %d held or free", s, a.next-1, len(owner))
		}
		for b := range sh.views {
			if !heads[b] {
				t.Errorf("shard %d: view of block %d, which the table no longer holds", s, b)
			}
		}
		sh.mu.Unlock()
	}
}

// Record keeps bounded copies: at most maxArgs arguments and maxArgsBytes
// bytes of them, exe and ids cut at their limits, nothing shared with the
// caller's memory; images spanning many blocks read back whole.
func TestImageBounds(t *testing.T) {
	tb := newTable(t, 8, false)
	many := make([]string, 100)
	for i := range many {
		many[i] = "x"
	}
	tb.Record(1, Image{Exe: "/bin/many", Args: many, StartMilli: 1})
	if img, _ := tb.Lookup(1, 0); len(img.Args) != maxArgs {
		t.Errorf("kept %d args, want %d", len(img.Args), maxArgs)
	}
	tb.Record(2, Image{Exe: "/bin/long", Args: []string{"a", strings.Repeat("b", 5000), "c", ""}, StartMilli: 1})
	img, _ := tb.Lookup(2, 0)
	if total := len(strings.Join(img.Args, "")); total != maxArgsBytes || len(img.Args) != 2 || img.Args[0] != "a" {
		t.Errorf("kept %d bytes in %d args %q…", total, len(img.Args), img.Args[0])
	}
	tb.Record(3, Image{Exe: "/" + strings.Repeat("e", 5000), UID: strings.Repeat("1", 100), PPID: 1 << 33, StartMilli: 1})
	if img, _ := tb.Lookup(3, 0); len(img.Exe) != maxExeBytes || len(img.UID) != maxIDBytes || img.Args != nil || img.PPID != 0 {
		t.Errorf("exe of %d bytes, uid of %d, args %q, ppid %d (want none for an impossible pid)", len(img.Exe), len(img.UID), img.Args, img.PPID)
	}
	line := []byte("/usr/bin/tool 1000 -v")
	in := func(i, j int) string { return unsafe.String(&line[i], j-i) }
	tb.Record(4, Image{Exe: in(0, 13), UID: in(14, 18), AUID: in(14, 18), Args: []string{in(19, 21)}, PPID: 3, StartMilli: 5, Source: SourceSyscall})
	copy(line, "XXXXXXXXXXXXXXXXXXXXX")
	want := Image{Exe: "/usr/bin/tool", UID: "1000", AUID: "1000", Args: []string{"-v"}, PPID: 3, StartMilli: 5, Source: SourceSyscall}
	if img, _ := tb.Lookup(4, 0); !reflect.DeepEqual(img, want) {
		t.Errorf("after the source changed: %+v, want %+v", img, want)
	}
	checkArena(t, tb)
}

// In steady state (the table full and evicting, the parents known) an
// exec costs the table no allocation, whatever its argv's length, with the parent
// and a chain of ancestors found: images go to reused arena blocks, and
// the parents' views and their chain are made once.
func TestExecAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	tb := tableWith(t, Config{MaxEntries: 64, Ancestry: 4})
	const t0 = 1_700_000_000_000
	enrichOK(t, tb, execEvent(t0, 10, 1, "/usr/lib/systemd/systemd", "systemd"))
	enrichOK(t, tb, execEvent(t0+1, 11, 10, "/usr/sbin/sshd", "sshd", "-D"))
	enrichOK(t, tb, execEvent(t0+2, 12, 11, "/usr/bin/bash", "bash", "-l"))
	for _, arg := range []string{"ls -l /var/log", strings.Repeat("m", 120), strings.Repeat("l", 3000)} {
		// A new pid each time, at a later time: the table evicts.
		evs := make([]*audit.Event, 600)
		for i := range evs {
			evs[i] = execEvent(t0+10+int64(i), 100+i%200, 12, "/usr/bin/bash", "bash", "-c", arg)
		}
		next := 0
		var ev *audit.Event
		var sum audit.Summary // the pool's worker summarises each event once, as here
		exec := func() {
			ev = evs[next]
			next++
			audit.Summarize(ev, &sum)
			ev.Summary = &sum
			enrichOK(t, tb, ev)
		}
		for range 300 {
			exec()
		}
		if n := testing.AllocsPerRun(200, exec); n != 0 {
			t.Errorf("argument of %d bytes: %v allocations per exec, want 0", len(arg), n)
		}
		pid := 100 + (next-1)%200
		var got []string
		for _, p := range ev.Ancestry {
			got = append(got, p.Executable)
		}
		if want := []string{"/usr/bin/bash", "/usr/sbin/sshd", "/usr/lib/systemd/systemd"}; !reflect.DeepEqual(got, want) || ev.Parent != ev.Ancestry[0] {
			t.Errorf("ancestry %q, want %q", got, want)
		}
		if img, ok := tb.Lookup(pid, 0); !ok || len(img.Args) != 3 || img.Args[2] != arg {
			t.Errorf("image of the last exec: %+v %v", img, ok)
		}
	}
	if st := tb.Stats(); st.Evictions == 0 || st.Len != 64 {
		t.Errorf("stats %+v: want a full table that evicted", st)
	}
	checkArena(t, tb)
}

// An event keeps its parent and ancestry unchanged after the table has
// evicted those images and reused their blocks for others, while other
// goroutines churn the table: what the table hands out is a copy, never
// its arena's memory. Under -race a string that pointed into a reused
// block would also be reported as a race between the churn's writes and
// the reads here.
func TestEvictedParentStringsUnchanged(t *testing.T) {
	const t0 = 1_700_000_000_000
	tb := tableWith(t, Config{MaxEntries: 16, Ancestry: 4})
	long := strings.Repeat("parent-argument ", 40) // spans several blocks
	enrichOK(t, tb, execEvent(t0, 50, 1, "/usr/bin/grandparent", "gp", long))
	enrichOK(t, tb, execEvent(t0+1, 51, 50, "/usr/bin/parent", "p", long, "tail"))
	ev := execEvent(t0+2, 52, 51, "/usr/bin/child", "c")
	enrichOK(t, tb, ev)
	snapshot := func() string { return fmt.Sprintf("%+v %+v %+v", *ev.Parent, *ev.Ancestry[0], *ev.Ancestry[1]) }
	want := snapshot()
	if !strings.Contains(want, "/usr/bin/parent") || !strings.Contains(want, "/usr/bin/grandparent") || len(ev.Ancestry) != 2 {
		t.Fatalf("before the churn: %s", want)
	}
	used := tb.shards[0].arena.next
	var wg, reader sync.WaitGroup
	stop := make(chan struct{})
	reader.Add(1)
	go func() { // the output stage, encoding the event meanwhile
		defer reader.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if got := snapshot(); got != want {
				t.Errorf("event changed under the churn:\n got %s\nwant %s", got, want)
				return
			}
		}
	}()
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				pid := 100 + g*1000 + i%500
				other := strings.Repeat(strconv.Itoa(i%10), len(long)) // same sizes: the freed blocks fit
				enrichOK(t, tb, execEvent(t0+10+int64(i), pid, 1, "/usr/bin/other-xxxx", "o", other, "tail"))
			}
		}()
	}
	wg.Wait()
	close(stop)
	reader.Wait()
	if _, ok := tb.Lookup(51, 0); ok {
		t.Fatal("the parent is still in the table: the test did not evict it")
	}
	if a := &tb.shards[0].arena; a.next > used+3*16*blocksPer(len(long)+40) {
		t.Errorf("arena grew to %d blocks from %d: freed blocks were not reused", a.next, used)
	}
	if got := snapshot(); got != want {
		t.Errorf("event changed:\n got %s\nwant %s", got, want)
	}
	checkArena(t, tb)
}

// blocksPer is the blocks an image of about n payload bytes takes.
func blocksPer(n int) uint32 {
	if n <= blockSize-headSize {
		return 1
	}
	return 1 + uint32((n-(blockSize-headSize)+blockSize-1)/blockSize)
}

// Eviction, replacement by newer images, images older than both held,
// /proc-less misses and graves free exactly the blocks the table lets go.
func TestArenaAccounting(t *testing.T) {
	tb := newTable(t, 32, false)
	for i := range 3000 {
		pid := 1 + (i*7919)%90
		arg := strings.Repeat("a", (i*37)%700)
		start := int64(1000 + (i*104729)%5000) // out of order: some are older than both held
		tb.Record(pid, Image{Exe: "/bin/x" + strconv.Itoa(i%13), Args: []string{"x", arg}, PPID: pid + 1, StartMilli: start, Source: SourceExec})
		if i%5 == 0 {
			ev := execEvent(start, pid+1000, pid, "/bin/child", "c")
			enrichOK(t, tb, ev)
		}
		if i%100 == 0 {
			checkArena(t, tb)
		}
	}
	checkArena(t, tb)
}

// A view the table has let go is not kept alive by the ancestry chains
// cached in other views: a linear chain of execs (each process starts the
// next), far longer than the table, leaves the first parent's view to the
// garbage collector once no event holds it.
func TestEvictedViewsReleased(t *testing.T) {
	const t0 = 1_700_000_000_000
	tb := tableWith(t, Config{MaxEntries: 16, Ancestry: 4})
	enrichOK(t, tb, execEvent(t0, 1000, 1, "/usr/bin/first", "f"))
	ev := execEvent(t0+1, 1001, 1000, "/usr/bin/second", "s")
	enrichOK(t, tb, ev)
	if ev.Parent == nil || ev.Parent.Executable != "/usr/bin/first" {
		t.Fatalf("parent %+v, want /usr/bin/first", ev.Parent)
	}
	first := weak.Make(ev.Parent) // p is a view's first field: the view itself
	ev = nil
	for pid := 1002; pid < 3000; pid++ {
		e := execEvent(t0+int64(pid), pid, pid-1, "/usr/bin/link", "l")
		enrichOK(t, tb, e)
		if want := min(4, pid-1000); len(e.Ancestry) != want { // 1000's parent is unknown
			t.Fatalf("pid %d: ancestry of %d, want %d", pid, len(e.Ancestry), want)
		}
	}
	runtime.GC()
	runtime.GC()
	if first.Value() != nil {
		t.Error("the first parent's view is still reachable after its image was evicted: cached chains keep freed views alive")
	}
	checkArena(t, tb)
}
