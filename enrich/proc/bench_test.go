package proc

import (
	"context"
	"testing"
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
