package proc

import (
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// syscallEvent is an event of pid (child of ppid) running exe, with a
// PROCTITLE of title, from a non-exec syscall (openat), at unix ms.
func syscallEvent(ms int64, pid, ppid int, exe, title string) *audit.Event {
	sc := rec("SYSCALL", "arch", "c000003e", "syscall", "257", "success", "yes", "exit", "3",
		"ppid", strconv.Itoa(ppid), "pid", strconv.Itoa(pid), "auid", "4294967295", "uid", "0",
		"comm", "x", "exe", exe, "key", "(null)")
	return &audit.Event{
		ID:      audit.EventID{Sec: ms / 1000, Msec: uint16(ms % 1000), Serial: uint32(ms)},
		Records: []*audit.Record{sc, rec("PROCTITLE", "proctitle", title)},
	}
}

func tableWith(t *testing.T, cfg Config) *Table {
	t.Helper()
	cfg.Enabled = true
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 64
	}
	tb, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestLearnRunningImage: a process whose exec the table did not see (the
// demo's pid 1) is learnt from its other events, so its children's events
// get a parent; a later event with the same exe keeps the image, one with
// another exe (an exec not audited) replaces it.
func TestLearnRunningImage(t *testing.T) {
	tb := tableWith(t, Config{Ancestry: 4})
	const t0 = 1_700_000_000_000
	enrichOK(t, tb, syscallEvent(t0, 1, 0, "/bin/busybox", "/bin/busybox\x00sh\x00/init"))
	child := execEvent(t0+50, 121, 1, "/usr/sbin/nginx", "nginx")
	enrichOK(t, tb, child)
	want := &audit.Process{PID: 1, Executable: "/bin/busybox", Args: []string{"/bin/busybox", "sh", "/init"}, UID: "0", StartSec: t0 / 1000}
	if !reflect.DeepEqual(child.Parent, want) {
		t.Fatalf("parent %+v, want %+v", child.Parent, want)
	}
	if len(child.Ancestry) != 1 || child.Ancestry[0] != child.Parent {
		t.Errorf("ancestry %v, want the parent alone", child.Ancestry)
	}
	enrichOK(t, tb, syscallEvent(t0+100, 1, 0, "/bin/busybox", "other"))
	if img, _ := tb.Lookup(1, 0); img.StartMilli != t0 || img.Source != SourceSyscall {
		t.Errorf("same exe replaced the image: %+v", img)
	}
	enrichOK(t, tb, syscallEvent(t0+200, 1, 0, "/sbin/init", "init"))
	if img, _ := tb.Lookup(1, 0); img.Exe != "/sbin/init" || img.StartMilli != t0+200 {
		t.Errorf("new exe not learnt: %+v", img)
	}
	if img, _ := tb.Lookup(1, t0+150); img.Exe != "/bin/busybox" {
		t.Errorf("image before the new exe: %+v", img)
	}
	if st := tb.Stats(); st.Execs != 1 {
		t.Errorf("execs %d, want 1 (only the exec event)", st.Execs)
	}
	// An event without a process (no exe) learns nothing.
	ev := &audit.Event{ID: audit.EventID{Sec: 1}, Records: []*audit.Record{rec("DAEMON_START", "pid", "91")}}
	enrichOK(t, tb, ev)
	if _, ok := tb.Lookup(91, 0); ok {
		t.Error("learnt an image from an event without exe")
	}
}

// TestAncestry: the chain is bounded by ancestry, parent first, stops at
// the first unknown ancestor, and at a pid already in the chain.
func TestAncestry(t *testing.T) {
	const t0 = 1_700_000_000_000
	chain := func(tb *Table) *audit.Event {
		// 10 ← 11 ← 12 ← 13 ← 14 ← 15 (10's parent 9 unknown)
		for pid := 10; pid <= 14; pid++ {
			enrichOK(t, tb, execEvent(t0+int64(pid), pid, pid-1, "/bin/p"+strconv.Itoa(pid), "p"))
		}
		ev := execEvent(t0+100, 15, 14, "/bin/p15", "p")
		enrichOK(t, tb, ev)
		return ev
	}
	exes := func(ps []*audit.Process) []string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Executable)
		}
		return s
	}
	for _, c := range []struct {
		n    int
		want []string
	}{
		{0, nil},
		{1, []string{"/bin/p14"}},
		{3, []string{"/bin/p14", "/bin/p13", "/bin/p12"}},
		{16, []string{"/bin/p14", "/bin/p13", "/bin/p12", "/bin/p11", "/bin/p10"}},
	} {
		tb := tableWith(t, Config{Ancestry: c.n})
		ev := chain(tb)
		if got := exes(ev.Ancestry); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ancestry %d: %q, want %q", c.n, got, c.want)
		}
		if c.n > 0 && ev.Ancestry[0] != ev.Parent {
			t.Errorf("ancestry %d: first is not the parent", c.n)
		}
		if st := tb.Stats(); st.FromTable != 5 || st.Unknown != 1 {
			t.Errorf("ancestry %d: lookups counted %+v, want the parents' only", c.n, st)
		}
	}
	// Pids reused into a loop: 20's parent 21, 21's parent 20.
	tb := tableWith(t, Config{Ancestry: 8})
	enrichOK(t, tb, execEvent(t0, 20, 21, "/bin/a", "a"))
	enrichOK(t, tb, execEvent(t0+1, 21, 20, "/bin/b", "b"))
	ev := execEvent(t0+2, 22, 21, "/bin/c", "c")
	enrichOK(t, tb, ev)
	if got := exes(ev.Ancestry); !reflect.DeepEqual(got, []string{"/bin/b", "/bin/a"}) {
		t.Errorf("loop: ancestry %q", got)
	}
	if err := (&Config{MaxEntries: 1, Ancestry: 17}).Validate(); err == nil {
		t.Error("ancestry 17 accepted")
	}
}

// TestCgroupFromProc: with the /proc fallback the table reads the cgroup
// of the live process that exec'd (this test's own process here), parses
// it like ParseCgroupFile, and hands every image of that cgroup the same
// value; a process gone before the read gets its parent's, unless the
// parent is a container runtime.
func TestCgroupFromProc(t *testing.T) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	want := ParseCgroupFile(b)
	tb := tableWith(t, Config{ProcFallback: true, Cgroup: true, Ancestry: 4})
	self := os.Getpid()
	ev := syscallEvent(1_700_000_000_000, self, os.Getppid(), "/x", "x")
	enrichOK(t, tb, ev)
	if ev.Cgroup == nil || *ev.Cgroup != want {
		t.Fatalf("cgroup %+v, want %+v", ev.Cgroup, want)
	}
	// A child that is gone (no such pid) takes its parent's cgroup.
	gone := execEvent(1_700_000_000_100, 1<<22+12345, self, "/bin/true", "true")
	enrichOK(t, tb, gone)
	if gone.Cgroup != ev.Cgroup || gone.Parent == nil || gone.Parent.PID != self {
		t.Fatalf("gone child: cgroup %p (parent's %p), parent %+v", gone.Cgroup, ev.Cgroup, gone.Parent)
	}
	// Unless the parent is a container runtime, shim or monitor (its
	// image read from the event: this live process's exe there): a
	// command it started (docker exec, kubectl exec, an entrypoint) runs
	// in a container, not in the runtime's cgroup, so none is known.
	for i, exe := range []string{"/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim", "/usr/sbin/runc", "/usr/bin/crun", "/usr/bin/conmon", "/usr/bin/containerd", "/usr/bin/bash"} {
		inherits := exe == "/usr/bin/containerd" || exe == "/usr/bin/bash"
		rt := tableWith(t, Config{ProcFallback: true, Cgroup: true, Ancestry: 4})
		p := syscallEvent(1_700_000_000_000, self, os.Getppid(), exe, "x")
		enrichOK(t, rt, p)
		child := execEvent(1_700_000_000_100, 1<<22+12346+i, self, "/usr/bin/cat", "cat")
		enrichOK(t, rt, child)
		if child.Parent == nil || child.Parent.Executable != exe {
			t.Fatalf("%s: parent %+v", exe, child.Parent)
		}
		if inherits != (child.Cgroup != nil && child.Cgroup == p.Cgroup) {
			t.Errorf("gone child of %s: cgroup %+v, parent's %+v (inherits: %v)", exe, child.Cgroup, p.Cgroup, inherits)
		}
	}
	// Off: no cgroup.
	off := tableWith(t, Config{ProcFallback: true})
	ev2 := syscallEvent(1_700_000_000_000, self, os.Getppid(), "/x", "x")
	enrichOK(t, off, ev2)
	if ev2.Cgroup != nil {
		t.Errorf("cgroup off: %+v", ev2.Cgroup)
	}
	// The cache shares one value per content and stays bounded.
	c := newCgroupCache()
	a1, a2 := c.intern([]byte("0::/system.slice/a.service\n")), c.intern([]byte("0::/system.slice/a.service\n"))
	if a1 != a2 || a1.Unit != "a.service" {
		t.Errorf("intern: %p %p %+v", a1, a2, a1)
	}
	for i := range maxCgroups + 10 {
		c.intern([]byte("0::/x" + strconv.Itoa(i)))
	}
	if len(c.byFile) > maxCgroups {
		t.Errorf("cache holds %d files, bound %d", len(c.byFile), maxCgroups)
	}
	if c.intern(nil) != nil {
		t.Error("an empty file gave a cgroup")
	}
}
