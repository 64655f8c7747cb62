package proc

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// BenchmarkEnrich records an exec and finds its parent in the table (the
// steady state: parents are known, /proc is not read).
func BenchmarkEnrich(b *testing.B) {
	tb, err := New(Config{Enabled: true, MaxEntries: 16384}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tb.Record(100, Image{Exe: "/usr/bin/bash", Args: []string{"bash"}, StartMilli: 1, Source: SourceExec})
	ev := execEvent(1_700_000_000_000, 101, 100, "/usr/bin/ls", "ls", "-l", "/tmp")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ev.Parent = nil
		if err := tb.Enrich(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	if ev.Parent == nil || ev.Parent.Executable != "/usr/bin/bash" {
		b.Fatalf("parent %+v", ev.Parent)
	}
}

// BenchmarkNewTable builds a table of the default size and records 500
// execs (a machine's live processes): its B/op is what the table reserves
// before the pids it holds call for more.
func BenchmarkNewTable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		tb, err := New(Config{Enabled: true, MaxEntries: 16384}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for pid := 1000; pid < 1500; pid++ {
			tb.Record(pid, Image{Exe: "/usr/bin/true", StartMilli: 1, Source: SourceExec})
		}
	}
}

// BenchmarkEntryCost fills a table of the default size with one exec image
// per pid (argv "bash -c <cmd>", 3 arguments, 34 bytes) and reports the
// heap the table holds per pid (B/entry, measured after a GC), and the
// same with a second image per pid (B/entry-2images: each pid exec'd
// twice, the most a pid holds). Each image is one 256-byte arena block
// here; cgroup facts add a pointer per block of a chunk that has one
// (an array beside the chunk); their parsed values are shared, at most
// maxCgroups of them.
func BenchmarkEntryCost(b *testing.B) {
	const n = 16384
	mk := func(gen int) []*audit.Event {
		evs := make([]*audit.Event, n)
		for i := range evs {
			evs[i] = execEvent(int64(1_700_000_000_000+gen*n+i), 1000+i, 1, "/usr/bin/bash", "bash", "-c", "ls -l /var/log/"+strconv.Itoa(i))
		}
		return evs
	}
	first, second := mk(0), mk(1)
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var one, two float64
	for b.Loop() {
		before := heap()
		tb, err := New(Config{Enabled: true, MaxEntries: n}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range first {
			if err := tb.Enrich(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		mid := heap()
		for _, ev := range second {
			if err := tb.Enrich(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		after := heap()
		if tb.Stats().Len != n {
			b.Fatalf("table holds %d pids, want %d", tb.Stats().Len, n)
		}
		one, two = float64(mid-before)/n, float64(after-before)/n
		runtime.KeepAlive(tb)
	}
	b.ReportMetric(one, "B/entry")
	b.ReportMetric(two, "B/entry-2images")
}

// BenchmarkEnrichSyscall is another event (not an exec) of a process the
// table knows, whose parent and grandparent it knows: the own-pid lookup,
// the parent and a two-element ancestry.
func BenchmarkEnrichSyscall(b *testing.B) {
	tb, err := New(Config{Enabled: true, MaxEntries: 16384, Ancestry: 4}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tb.Record(100, Image{Exe: "/usr/bin/bash", Args: []string{"bash"}, PPID: 50, StartMilli: 1, Source: SourceExec})
	tb.Record(50, Image{Exe: "/usr/sbin/sshd", StartMilli: 1, Source: SourceExec})
	tb.Record(101, Image{Exe: "/usr/bin/cat", PPID: 100, StartMilli: 1, Source: SourceExec})
	ev := syscallEvent(1_700_000_000_000, 101, 100, "/usr/bin/cat", "cat")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ev.Parent, ev.Ancestry = nil, nil
		if err := tb.Enrich(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	if len(ev.Ancestry) != 2 {
		b.Fatalf("ancestry %v", ev.Ancestry)
	}
}

// BenchmarkCgroupRead reads and interns this process's /proc/<pid>/cgroup:
// what each image the table learns costs in plugin mode with cgroup on.
func BenchmarkCgroupRead(b *testing.B) {
	c := newCgroupCache()
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if cg, _ := c.read("/proc", pid); cg == nil {
			b.Fatal("no cgroup read")
		}
	}
}

// BenchmarkExecStream runs 32,768 exec events of distinct pids, each with
// an argv like the replay corpus's (exe, uid, auid and argv about 140
// bytes), through a default-size table (16,384 pids), round after round:
// each exec learns an image and evicts the oldest pid, as on a busy host.
func BenchmarkExecStream(b *testing.B) {
	tb, err := New(Config{Enabled: true, MaxEntries: 16384, Ancestry: 4}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tb.Record(100, Image{Exe: "/usr/bin/bash", Args: []string{"bash"}, StartMilli: 1, Source: SourceExec})
	const n = 32768
	evs := make([]*audit.Event, n)
	for i := range evs {
		evs[i] = execEvent(int64(1_700_000_000_000+i), 1000+i, 100, "/usr/local/bin/worker",
			"worker", "--flag", "--input=/var/lib/worker/queue/item-"+strconv.Itoa(i), "--output=/var/lib/worker/out", "--retries=3")
		// As the pool does before the chain (and not timed here).
		evs[i].Summary = audit.SummaryOf(evs[i])
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%n]
		ev.Parent, ev.Ancestry = nil, nil
		if err := tb.Enrich(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
