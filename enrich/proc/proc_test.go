package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/recordtest"
)

var rec = recordtest.Record

// execEvent is an x86_64 execve event of pid (child of ppid) running exe
// with args, at unix millisecond ms.
func execEvent(ms int64, pid, ppid int, exe string, args ...string) *audit.Event {
	sc := rec("SYSCALL", "arch", "c000003e", "syscall", "59", "success", "yes", "exit", "0",
		"ppid", strconv.Itoa(ppid), "pid", strconv.Itoa(pid), "auid", "1000", "uid", "1000",
		"comm", filepath.Base(exe), "exe", exe, "key", "(null)")
	kv := []string{"argc", strconv.Itoa(len(args))}
	for i, a := range args {
		kv = append(kv, "a"+strconv.Itoa(i), a)
	}
	return &audit.Event{
		ID:      audit.EventID{Sec: ms / 1000, Msec: uint16(ms % 1000), Serial: uint32(ms)},
		Records: []*audit.Record{sc, rec("EXECVE", kv...), rec("CWD", "cwd", "/home/alice")},
	}
}

// stateOf is the outcome of a table lookup of pid at time at.
func (t *Table) stateOf(pid int, at int64) lookupState {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, st := t.imageAt(sh, pid, at)
	return st
}

func newTable(t testing.TB, max int, fallback bool) *Table {
	t.Helper()
	tb, err := New(Config{Enabled: true, MaxEntries: max, ProcFallback: fallback}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func enrichOK(t *testing.T, tb *Table, ev *audit.Event) {
	t.Helper()
	if err := tb.Enrich(context.Background(), ev); err != nil {
		t.Fatalf("Enrich: %v", err)
	}
}

func TestExecChainParent(t *testing.T) {
	tb := newTable(t, 64, false)
	const t0 = 1_700_000_000_000
	bash := execEvent(t0, 100, 1, "/usr/bin/bash", "bash", "-l")
	enrichOK(t, tb, bash)
	if bash.Parent != nil {
		t.Fatalf("pid 1 is not in the table and fallback is off, got parent %+v", bash.Parent)
	}
	sh := execEvent(t0+10, 101, 100, "/usr/bin/sh", "sh", "-c", "ls /tmp")
	enrichOK(t, tb, sh)
	want := &audit.Process{PID: 100, Executable: "/usr/bin/bash", Args: []string{"bash", "-l"}, UID: "1000", StartSec: t0 / 1000}
	if !reflect.DeepEqual(sh.Parent, want) {
		t.Fatalf("parent of sh = %+v, want %+v", sh.Parent, want)
	}
	// sh exec'd again as ls (same pid 101): the grandchild's parent is ls.
	ls := execEvent(t0+20, 101, 100, "/usr/bin/ls", "ls", "/tmp")
	enrichOK(t, tb, ls)
	grand := execEvent(t0+30, 102, 101, "/usr/bin/cat", "cat")
	enrichOK(t, tb, grand)
	if grand.Parent == nil || grand.Parent.Executable != "/usr/bin/ls" || !reflect.DeepEqual(grand.Parent.Args, []string{"ls", "/tmp"}) {
		t.Fatalf("parent after exec = %+v, want the new image /usr/bin/ls", grand.Parent)
	}
	// An event of pid 103 stamped between the two execs of 101 but enriched
	// after both still sees sh.
	late := execEvent(t0+15, 103, 101, "/usr/bin/true", "true")
	enrichOK(t, tb, late)
	if late.Parent == nil || late.Parent.Executable != "/usr/bin/sh" {
		t.Fatalf("parent at t0+15 = %+v, want /usr/bin/sh", late.Parent)
	}
	// Before any known image of 101: unknown rather than a wrong guess.
	early := execEvent(t0+5, 104, 101, "/usr/bin/true", "true")
	enrichOK(t, tb, early)
	if early.Parent != nil {
		t.Fatalf("parent before any known image = %+v, want nil", early.Parent)
	}
	st := tb.Stats()
	if st.Execs != 6 || st.FromTable != 4 || st.Unknown != 2 || st.Len != 5 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRecordOutOfOrderKeepsTwoLatest(t *testing.T) {
	tb := newTable(t, 8, false)
	tb.Record(7, Image{Exe: "/b", StartMilli: 2000, Source: SourceExec})
	tb.Record(7, Image{Exe: "/c", StartMilli: 3000, Source: SourceExec})
	tb.Record(7, Image{Exe: "/a", StartMilli: 1000, Source: SourceExec}) // late, oldest: dropped
	tb.Record(7, Image{Exe: "/b2", StartMilli: 2500, Source: SourceExec})
	for _, c := range []struct {
		at   int64
		want string
		ok   bool
	}{{0, "/c", true}, {3500, "/c", true}, {3000, "/c", true}, {2999, "/b2", true}, {2500, "/b2", true}, {2400, "", false}} {
		img, ok := tb.Lookup(7, c.at)
		if ok != c.ok || img.Exe != c.want {
			t.Errorf("Lookup(7, %d) = %q, %v; want %q, %v", c.at, img.Exe, ok, c.want, c.ok)
		}
	}
}

func TestEvictionBound(t *testing.T) {
	tb := newTable(t, 16, false)
	for pid := 1; pid <= 100; pid++ {
		enrichOK(t, tb, execEvent(int64(pid)*1000, pid, 0, "/usr/bin/x"+strconv.Itoa(pid), "x"))
	}
	st := tb.Stats()
	if st.Len != 16 || st.Evictions != 84 || st.Execs != 100 {
		t.Fatalf("stats = %+v, want Len 16, Evictions 84, Execs 100", st)
	}
	if _, ok := tb.Lookup(84, 0); ok {
		t.Error("pid 84 should have been evicted")
	}
	if img, ok := tb.Lookup(85, 0); !ok || img.Exe != "/usr/bin/x85" {
		t.Errorf("pid 85 = %+v, %v; want /usr/bin/x85", img, ok)
	}
	// A lookup refreshes recency: 85 survives the next insert, 86 goes.
	tb.Lookup(85, 0)
	tb.Record(1000, Image{Exe: "/new", StartMilli: 1})
	if _, ok := tb.Lookup(85, 0); !ok {
		t.Error("recently used pid 85 was evicted")
	}
	if _, ok := tb.Lookup(86, 0); ok {
		t.Error("least recently used pid 86 was not evicted")
	}
}

func TestProcFallbackSelf(t *testing.T) {
	tb := newTable(t, 64, true)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	ev := execEvent(now, 999999, os.Getpid(), "/usr/bin/true", "true")
	enrichOK(t, tb, ev)
	p := ev.Parent
	if p == nil {
		t.Fatal("no parent from /proc for the test process")
	}
	if p.PID != os.Getpid() || p.Executable != self || p.UID != strconv.Itoa(os.Getuid()) {
		t.Errorf("parent = %+v; want pid %d exe %s uid %d", p, os.Getpid(), self, os.Getuid())
	}
	if !reflect.DeepEqual(p.Args, os.Args) {
		t.Errorf("parent args = %q, want os.Args %q", p.Args, os.Args)
	}
	if p.StartSec > now/1000 || p.StartSec < now/1000-3600 {
		t.Errorf("parent start %d not within the hour before %d", p.StartSec, now/1000)
	}
	// The result is cached: the second lookup comes from the table.
	ev2 := execEvent(now+1, 999998, os.Getpid(), "/usr/bin/true", "true")
	enrichOK(t, tb, ev2)
	if st := tb.Stats(); st.FromProc != 1 || st.FromTable != 1 {
		t.Errorf("stats = %+v, want one /proc read and one table hit", st)
	}
}

func TestProcFallbackOwnParent(t *testing.T) {
	tb := newTable(t, 64, true)
	ppid := os.Getppid()
	ev := execEvent(time.Now().UnixMilli(), os.Getpid(), ppid, "/usr/bin/true", "true")
	enrichOK(t, tb, ev)
	if ev.Parent == nil {
		t.Fatalf("no parent for ppid %d", ppid)
	}
	// Compare with what ps reports for the same pid.
	out, err := exec.Command("ps", "-ww", "-o", "args=", "-p", strconv.Itoa(ppid)).Output()
	if err != nil {
		t.Fatalf("ps (procps) is needed for this test: %v", err)
	}
	var args string
	for i, a := range ev.Parent.Args {
		if i > 0 {
			args += " "
		}
		args += a
	}
	// The table keeps at most maxArgsBytes of a command line; ps shows all.
	got := strings.TrimSuffix(string(out), "\n")
	if args == "" || (got != args && (len(got) < maxArgsBytes || !strings.HasPrefix(got, args))) {
		t.Errorf("parent args %q, ps says %q", args, got)
	}
	if !filepath.IsAbs(ev.Parent.Executable) {
		t.Errorf("parent exe %q is not absolute", ev.Parent.Executable)
	}
}

func TestProcFallbackExitedAndReused(t *testing.T) {
	tb := newTable(t, 64, true)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("running true: %v", err)
	}
	gone := cmd.Process.Pid
	now := time.Now().UnixMilli()
	for i := 0; i < 2; i++ {
		ev := execEvent(now, 999999, gone, "/usr/bin/id", "id")
		enrichOK(t, tb, ev)
		if ev.Parent != nil {
			t.Fatalf("exited pid %d gave parent %+v", gone, ev.Parent)
		}
	}
	if st := tb.stateOf(gone, now); st != knownMiss {
		t.Errorf("exited pid not cached as a miss (state %d)", st)
	}
	// An exec of that pid replaces the cached miss.
	tb.Record(gone, Image{Exe: "/usr/bin/sleep", StartMilli: now})
	if img, ok := tb.Lookup(gone, now); !ok || img.Exe != "/usr/bin/sleep" {
		t.Errorf("after exec: %+v %v", img, ok)
	}
	// After the TTL the miss is forgotten.
	tb.storeMiss(4194000)
	tb.now = func() time.Time { return time.Now().Add(2 * missTTL) }
	if st := tb.stateOf(4194000, now); st != absent {
		t.Errorf("expired miss state %d, want absent", st)
	}

	// An event older than the live process that now holds the pid (ours):
	// the pid was reused, so the parent is unknown.
	old := execEvent(1000, 999999, os.Getpid(), "/usr/bin/id", "id")
	enrichOK(t, tb, old)
	if old.Parent != nil {
		t.Errorf("event from 1970 got today's process as parent: %+v", old.Parent)
	}
}

func TestIntegrityRuleOnlyEvent(t *testing.T) {
	tb := newTable(t, 8, false)
	tb.Record(1943, Image{Exe: "/bin/bash", Args: []string{"-bash"}, UID: "0", StartMilli: 1000, Source: SourceExec})
	ev := &audit.Event{
		ID: audit.EventID{Sec: 5},
		Records: []*audit.Record{rec("INTEGRITY_RULE", "file", "/tmp/kaiten.bin",
			"hash", "sha1:48a3171d8f04c09f6d06362d4c4b995eaa97d489", "ppid", "1943", "pid", "8205",
			"auid", "0", "uid", "0", "comm", "bash", "exe", "/bin/bash")},
	}
	enrichOK(t, tb, ev)
	if ev.Parent == nil || ev.Parent.Executable != "/bin/bash" || ev.Parent.PID != 1943 {
		t.Fatalf("parent = %+v", ev.Parent)
	}
	if tb.Stats().Execs != 0 {
		t.Error("an INTEGRITY_RULE alone must not be recorded as an exec")
	}
}

func TestFailedExecNotRecorded(t *testing.T) {
	tb := newTable(t, 8, false)
	ev := execEvent(1000, 50, 1, "/usr/bin/x", "x")
	ev.Records[0].Fields[2].Value = "no"
	enrichOK(t, tb, ev)
	// A failed execve's exe is the caller's running image: it is learnt
	// as such, not as an exec.
	img, ok := tb.Lookup(50, 0)
	if !ok || img.Source != SourceSyscall || img.StartMilli != 1000 || tb.Stats().Execs != 0 {
		t.Errorf("failed execve: image %+v %v, execs %d; want the running image, no exec", img, ok, tb.Stats().Execs)
	}
}

func TestConcurrentUse(t *testing.T) {
	tb := newTable(t, 32, false)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				pid := 2 + (g*500+i)%64
				ev := execEvent(int64(i+1)*10, pid, pid-1, fmt.Sprintf("/bin/p%d", pid), "p")
				if err := tb.Enrich(context.Background(), ev); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if st := tb.Stats(); st.Len > 32 || st.Execs != 4000 || st.FromTable+st.Unknown != 4000 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil || c.MaxEntries != 16384 || !c.ProcFallback || !c.Enabled {
		t.Fatalf("defaults %+v: %v", c, err)
	}
	for _, n := range []int{0, -1, 1<<24 + 1} {
		c.MaxEntries = n
		if err := c.Validate(); err == nil {
			t.Errorf("max_entries %d accepted", n)
		}
		if _, err := New(c, nil); err == nil {
			t.Errorf("New with max_entries %d succeeded", n)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := "1234 (a b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5678 1000 100 rest\n"
	comm, ppid, start, err := parseStat([]byte(line))
	if err != nil || string(comm) != "a b) c" || ppid != 77 || start != 5678 {
		t.Fatalf("parseStat = %q %d %d %v; want \"a b) c\" 77 5678", comm, ppid, start, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S z 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0",
		"1 )x( S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0"} {
		if _, _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

// TestErrorNamesNoEnricher: the pool puts "proc: " before an enricher's
// error (enrich.Pool), so Enrich's errors must not start with it too: a
// read of /proc that cannot start before the deadline gave
// "proc: proc: waiting to read /proc/N: …".
func TestErrorNamesNoEnricher(t *testing.T) {
	tb := newTable(t, 64, true)
	for range cap(tb.sem) {
		tb.sem <- struct{}{} // every /proc read slot taken
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := execEvent(time.Now().UnixMilli(), os.Getpid(), os.Getppid(), "/usr/bin/true", "true")
	err := tb.Enrich(ctx, ev)
	if err == nil || !strings.HasPrefix(err.Error(), "waiting to read /proc/") {
		t.Errorf("Enrich: %v, want waiting to read /proc/…", err)
	}
}
