package audit

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// slabLines returns every line of the parser fixtures and the bundled
// capture: kernel, user-space (nested msg='...'), ENRICHED tails, hex
// values, daemon records, EOE.
func slabLines(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.log")
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, filepath.Join("..", "testdata", "capture.log"))
	var lines []string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for l := range bytes.SplitSeq(data, []byte{'\n'}) {
			if len(l) > 0 {
				lines = append(lines, string(l))
			}
		}
	}
	return lines
}

// sameRecord reports whether two records say the same (the slab aside).
func sameRecord(a, b *Record) bool {
	if b == nil {
		return false
	}
	return a.Node == b.Node && a.Type == b.Type && a.TypeNum == b.TypeNum && a.Sec == b.Sec && a.Msec == b.Msec &&
		a.Serial == b.Serial && a.Line == b.Line && a.NestedFrom == b.NestedFrom && a.Irregular == b.Irregular &&
		slices.Equal(a.Fields, b.Fields) && slices.Equal(a.Interp, b.Interp)
}

// fresh parses line with a parser of its own, as the reference.
func fresh(line string) *Record {
	var p Parser
	r, err := p.Parse(line)
	if err != nil {
		return nil
	}
	return r
}

// TestSlabsKeepRecordsIntact parses every fixture line with one parser
// (records fill slabs; nested fields and ENRICHED tails), and a record
// with more fields than a slab holds; every record must equal the same
// line parsed alone, also after the records following it were parsed.
func TestSlabsKeepRecordsIntact(t *testing.T) {
	lines := slabLines(t)
	var args strings.Builder
	args.WriteString(`type=EXECVE msg=audit(1700000000.000:1): argc=2000`)
	for i := range 2000 {
		fmt.Fprintf(&args, ` a%d="x%d"`, i, i)
	}
	lines = slices.Insert(lines, len(lines)/2, args.String())
	var p Parser
	var recs []*Record
	var srcs []string
	for _, l := range lines {
		r, err := p.Parse(l)
		if err != nil {
			continue
		}
		recs, srcs = append(recs, r), append(srcs, l)
	}
	if len(recs) < 2*slabRecords {
		t.Fatalf("only %d records: the fixtures do not fill two slabs", len(recs))
	}
	for i, r := range recs {
		if want := fresh(srcs[i]); !sameRecord(r, want) {
			t.Fatalf("record %d differs from its line parsed alone:\n got %+v\nwant %+v", i, r, want)
		}
	}
}

// TestReleasedSlabsAreReused: once every event is released, parsing goes
// on in the same slabs and allocates nothing (the lines here have no hex
// values, whose decoded bytes are never reused).
func TestReleasedSlabsAreReused(t *testing.T) {
	var lines []string
	for i := range 64 {
		s := 1700000000 + i
		lines = append(lines,
			fmt.Sprintf(`type=SYSCALL msg=audit(%d.000:%d): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=1 pid=%d auid=1000 uid=0 comm="sh" exe="/bin/sh" key="k"`+"\x1d"+`ARCH=x86_64 SYSCALL=execve AUID="u" UID="root"`, s, i, i),
			fmt.Sprintf(`type=CWD msg=audit(%d.000:%d): cwd="/"`, s, i),
			fmt.Sprintf(`type=PATH msg=audit(%d.000:%d): item=0 name="/bin/sh" inode=1 dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL`, s, i),
			fmt.Sprintf(`type=USER_CMD msg=audit(%d.000:%d): pid=1 uid=0 auid=0 ses=1 msg='cwd="/" cmd=ls exe="/usr/bin/sudo" terminal=pts/0 res=success'`, s, i),
			fmt.Sprintf(`type=EOE msg=audit(%d.000:%d): `, s, i))
	}
	var p Parser
	var out []*Event
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, func(ev *Event) { out = append(out, ev) })
	run := func() {
		for _, l := range lines {
			rec, err := p.Parse(l)
			if err != nil {
				t.Fatal(err)
			}
			r.Push(rec)
		}
		r.Flush()
		for _, ev := range out {
			ev.Release()
		}
		out = out[:0]
	}
	run() // warm up: the slabs, the reassembler's maps and lists
	run()
	if n := testing.AllocsPerRun(20, run); n > 0 {
		// The records, fields, events and the reassembler's entries are
		// all reused once released.
		t.Errorf("%.0f allocations per %d lines after release; want none", n, len(lines))
	}
	if got := len(p.free.slabs); got == 0 {
		t.Error("no slab came back to the free list")
	}
}

// TestUseAfterReleaseShows: a record read after its event was released
// (the bug the ownership rule forbids) reads ReleasedMarker in a test
// binary, or another record's content once the slab is reused; strings
// taken from it before the release keep their value.
func TestUseAfterReleaseShows(t *testing.T) {
	if !poisonReleased {
		t.Fatal("released slabs are not poisoned in this test binary")
	}
	var p Parser
	var kept *Record
	var name, value string
	for i := range slabRecords {
		rec, err := p.Parse(fmt.Sprintf(`type=CWD msg=audit(1.000:%d): cwd="/home/u%d"`, i, i))
		if err != nil {
			t.Fatal(err)
		}
		if i == slabRecords-1 {
			kept, name, value = rec, rec.Fields[0].Name, rec.Fields[0].Value
		}
		ev := &Event{Records: []*Record{rec}}
		ev.Release()
		if ev.Records != nil {
			t.Fatal("Release left the records on the event")
		}
	}
	// The next record retires the full slab, whose records are all
	// released: it is recycled (poisoned) and reused from its start.
	if _, err := p.Parse(`type=CWD msg=audit(2.000:1): cwd="/next"`); err != nil {
		t.Fatal(err)
	}
	if kept.Type != ReleasedMarker || kept.Line != ReleasedMarker {
		t.Errorf("released record reads type %q line %q; want the marker", kept.Type, kept.Line)
	}
	if name != "cwd" || value != "/home/u127" {
		t.Errorf("strings taken before the release changed: %q=%q", name, value)
	}
}

// TestReleasedEventIsReusedClean: an event read after its release (the
// bug the ownership rule forbids) reads ReleasedMarker in a test binary;
// the reassembler's next event is the same Event, with nothing left of
// the enrichment of the one before and only its new record; a second
// release before the reuse does not hand it out twice.
func TestReleasedEventIsReusedClean(t *testing.T) {
	var p Parser
	var out []*Event
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, func(ev *Event) { out = append(out, ev) })
	push := func(line string) {
		rec, err := p.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		r.Push(rec)
	}
	push(`type=CWD msg=audit(1.000:1): cwd="/a"`)
	push(`type=PATH msg=audit(1.000:1): item=0 name="/a/b"`)
	push(`type=EOE msg=audit(1.000:1): `)
	if len(out) != 1 || len(out[0].Records) != 2 {
		t.Fatalf("first event: %d events", len(out))
	}
	first := out[0]
	first.AddTag("tag-of-the-first")
	first.Severity = 3
	first.Parent = &Process{PID: 7}
	first.Release()
	if first.ID.Node != ReleasedMarker || len(first.Tags) != 1 || first.Tags[0] != ReleasedMarker || first.Parent != nil {
		t.Errorf("released event reads node %q tags %v parent %v; want the marker", first.ID.Node, first.Tags, first.Parent)
	}
	first.Release() // a stale second release: no effect
	push(`type=CWD msg=audit(2.000:2): cwd="/c"`)
	push(`type=EOE msg=audit(2.000:2): `)
	push(`type=CWD msg=audit(3.000:3): cwd="/d"`)
	push(`type=EOE msg=audit(3.000:3): `)
	if len(out) != 3 {
		t.Fatalf("%d events, want 3", len(out))
	}
	second, third := out[1], out[2]
	if second != first {
		t.Error("the released event was not reused")
	}
	if third == second {
		t.Fatal("one released event was handed out twice")
	}
	if second.ID.Serial != 2 || second.ID.Node != "" || len(second.Records) != 1 || second.Records[0].Fields[0].Value != "/c" ||
		len(second.Tags) != 0 || second.Severity != 0 || second.Parent != nil {
		t.Errorf("reused event: %+v; want serial 2 with one record and no enrichment", *second)
	}
}

// TestReleaseOnce: releasing an event twice, or an event no parser made,
// does nothing; a slab is recycled once, after its last record.
func TestReleaseOnce(t *testing.T) {
	var p Parser
	a, _ := p.Parse(`type=CWD msg=audit(1.000:1): cwd="/a"`)
	b, _ := p.Parse(`type=CWD msg=audit(1.000:2): cwd="/b"`)
	s := a.slab
	ea, eb := &Event{Records: []*Record{a}}, &Event{Records: []*Record{b}}
	ea.Release()
	ea.Records = []*Record{a} // a stale second release of the same record
	ea.Release()
	p.retire()
	if got := s.refs.Load(); got != 1 {
		t.Fatalf("after one of two records released and retirement refs = %d, want 1", got)
	}
	if b.Type == ReleasedMarker {
		t.Fatal("the slab was recycled while a record of it was held")
	}
	eb.Release()
	if got := len(p.free.slabs); got != 1 {
		t.Errorf("%d free slabs after the last release, want 1", got)
	}
	(&Event{Kind: KindVerdict}).Release()
	(&Event{Records: []*Record{{Type: "SYSCALL"}}}).Release()
}

// TestReleaseConcurrent runs the plugin's shape under the race detector:
// one goroutine parses and reassembles, workers take the events, hold
// them for a while and release them in any order. Every record must
// still equal its line parsed alone when it is released, so a slab
// recycled too early (a record released twice or counted wrong) shows as
// a changed or poisoned record, and an unordered reuse as a race.
func TestReleaseConcurrent(t *testing.T) {
	lines := slabLines(t)
	want := make(map[string]*Record, len(lines))
	for _, l := range lines {
		if r := fresh(l); r != nil {
			want[l] = r
		}
	}
	const workers = 4
	events := make(chan *Event, 64)
	var bad sync.Map
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var held []*Event
			check := func(ev *Event) {
				for _, r := range ev.Records {
					if !sameRecord(r, want[r.Line]) {
						bad.Store(r.Line, fmt.Sprintf("%+v", *r))
					}
				}
				ev.Release()
			}
			for ev := range events {
				held = append(held, ev)
				for len(held) > 0 && rng.IntN(3) == 0 {
					i := rng.IntN(len(held))
					check(held[i])
					held = slices.Delete(held, i, i+1)
				}
			}
			for _, ev := range held {
				check(ev)
			}
		})
	}
	var p Parser
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, func(ev *Event) { events <- ev })
	for range 4 {
		for _, l := range lines {
			if rec, err := p.Parse(l); err == nil {
				r.Push(rec)
			}
		}
	}
	r.Flush()
	close(events)
	wg.Wait()
	bad.Range(func(k, v any) bool {
		t.Errorf("record changed before its release:\nline %q\n got %s", k, v)
		return true
	})
}
