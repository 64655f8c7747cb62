package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/hunt"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// fakeProcess is a process of a fake /proc tree (see fakeProc).
type fakeProcess struct {
	comm string
	ppid int
	uid  string
	argv []string
	// exe is the target of the exe link; "" writes no link (a kernel
	// thread, a process gone meanwhile) and "denied" a regular file, whose
	// readlink fails with EINVAL, as /proc/<pid>/exe of another user's
	// process fails with EACCES once the plugin has dropped its
	// privileges (root, who runs the tests, passes every permission check
	// of a plain directory tree).
	exe string
}

// fakeBootSec is the boot time of fakeProc trees; every fake process
// started one second after it.
const fakeBootSec = 1_700_000_000

// fakeProc writes a /proc tree of procs (by pid) into a temp dir and
// returns a table with proc_fallback reading it and cgroup off.
func fakeProc(t *testing.T, procs map[int]fakeProcess) *Table {
	t.Helper()
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu  1 2 3\nbtime "+strconv.Itoa(fakeBootSec)+"\n")
	for pid, p := range procs {
		dir := strconv.Itoa(pid)
		if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		// starttime (field 22) is 100 ticks: one second after boot.
		write(dir+"/stat", dir+" ("+p.comm+") S "+strconv.Itoa(p.ppid)+" 1 1 0 -1 4194624 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 rest\n")
		write(dir+"/cmdline", strings.Join(p.argv, "\x00")+"\x00")
		write(dir+"/status", "Name:\t"+p.comm+"\nUid:\t"+p.uid+"\t"+p.uid+"\t"+p.uid+"\t"+p.uid+"\n")
		switch p.exe {
		case "":
		case "denied":
			write(dir+"/exe", "")
		default:
			if err := os.Symlink(p.exe, filepath.Join(root, dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	tb, err := New(Config{Enabled: true, MaxEntries: 64, Ancestry: 4}, &metrics.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	if tb.fs, err = newProcFS(root); err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestServerRulesMatchParentKnownByName: php-fpm, started before the
// plugin as root (the master) and www-data (its worker), is known to the
// table from /proc only, where its exe link cannot be read once the plugin
// runs as its service user. A shell the worker starts, and a discovery
// command under that shell, still meet the built-in web-server rules
// through the processes' names (comm), and the parent's executable stays
// unknown rather than made up.
func TestServerRulesMatchParentKnownByName(t *testing.T) {
	tb := fakeProc(t, map[int]fakeProcess{
		500: {comm: "php-fpm8.2", ppid: 1, uid: "0", exe: "denied", argv: []string{"php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"}},
		501: {comm: "php-fpm8.2", ppid: 500, uid: "33", exe: "denied", argv: []string{"php-fpm: pool www"}},
	})
	h, err := hunt.New(hunt.DefaultConfig(), &metrics.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(ev *audit.Event) []string {
		t.Helper()
		for _, e := range []interface {
			Enrich(context.Context, *audit.Event) error
		}{tb, h} {
			if err := e.Enrich(context.Background(), ev); err != nil {
				t.Fatalf("%T.Enrich: %v", e, err)
			}
		}
		var rules []string
		for _, hit := range ev.Hunt {
			rules = append(rules, hit.Rule)
		}
		return rules
	}
	const t0 = (fakeBootSec + 10) * 1000
	sh := execEvent(t0, 600, 501, "/usr/bin/dash", "sh", "-c", "id")
	if rules := run(sh); !slices.Contains(rules, "web_server_spawns_shell") {
		t.Errorf("sh under php-fpm: rules %q, want web_server_spawns_shell", rules)
	}
	id := execEvent(t0+5, 601, 600, "/usr/bin/id", "id")
	if rules := run(id); !slices.Contains(rules, "server_spawns_user_discovery") {
		t.Errorf("id under sh under php-fpm: rules %q, want server_spawns_user_discovery", rules)
	}

	worker := &audit.Process{PID: 501, Comm: "php-fpm8.2", Args: []string{"php-fpm: pool www"}, UID: "33", StartSec: fakeBootSec + 1}
	if !reflect.DeepEqual(sh.Parent, worker) {
		t.Errorf("parent of sh = %+v, want %+v", sh.Parent, worker)
	}
	var chain []string
	for _, p := range id.Ancestry {
		chain = append(chain, strconv.Itoa(p.PID)+" "+p.Executable+" "+p.Comm)
	}
	if want := []string{"600 /usr/bin/dash ", "501  php-fpm8.2", "500  php-fpm8.2"}; !slices.Equal(chain, want) {
		t.Errorf("ancestry of id = %q, want %q", chain, want)
	}
	if st := tb.Stats(); st.ExeUnreadable != 2 || st.FromProc != 1 || st.ProcErrs != 0 {
		t.Errorf("stats %+v, want 2 unreadable executables, 1 parent from /proc", st)
	}
}

// TestExeUnreadable: what the table keeps of processes read from /proc
// without their exe link, and that a later event of such a process, which
// names its executable, teaches the table that executable.
func TestExeUnreadable(t *testing.T) {
	tb := fakeProc(t, map[int]fakeProcess{
		2:   {comm: "kthreadd", ppid: 0, uid: "0"}, // a kernel thread: no exe link, no cmdline
		700: {comm: "/usr/sbin/nginx", ppid: 1, uid: "0", exe: "denied", argv: []string{"nginx: master process /usr/sbin/nginx"}},
		701: {comm: "sshd", ppid: 1, uid: "0", exe: "/usr/sbin/sshd", argv: []string{"sshd: /usr/sbin/sshd -D"}},
	})
	const t0 = (fakeBootSec + 10) * 1000
	for _, c := range []struct {
		pid  int
		want Image
	}{
		{2, Image{Comm: "kthreadd", UID: "0", StartMilli: (fakeBootSec + 1) * 1000, Source: SourceProc}},
		// The comm a process set itself may look like a path: it is still
		// kept as the comm.
		{700, Image{Comm: "/usr/sbin/nginx", Args: []string{"nginx: master process /usr/sbin/nginx"}, UID: "0", PPID: 1, StartMilli: (fakeBootSec + 1) * 1000, Source: SourceProc}},
		{701, Image{Exe: "/usr/sbin/sshd", Args: []string{"sshd: /usr/sbin/sshd -D"}, UID: "0", PPID: 1, StartMilli: (fakeBootSec + 1) * 1000, Source: SourceProc}},
	} {
		ev := execEvent(t0, 900+c.pid, c.pid, "/usr/bin/true", "true")
		enrichOK(t, tb, ev)
		if ev.Parent == nil || ev.Parent.Executable != c.want.Exe || ev.Parent.Comm != c.want.Comm {
			t.Errorf("parent %d: %+v, want executable %q, comm %q", c.pid, ev.Parent, c.want.Exe, c.want.Comm)
		}
		if img, ok := tb.Lookup(c.pid, 0); !ok || !reflect.DeepEqual(img, c.want) {
			t.Errorf("Lookup(%d) = %+v, %v; want %+v", c.pid, img, ok, c.want)
		}
	}
	if st := tb.Stats(); st.ExeUnreadable != 1 {
		t.Errorf("stats %+v, want 1 unreadable executable (the kernel thread has none)", st)
	}

	// An event of nginx itself names its executable: the table learns it,
	// though it equals the comm it knew.
	sc := rec("SYSCALL", "arch", "c000003e", "syscall", "2", "success", "yes", "exit", "3",
		"ppid", "1", "pid", "700", "auid", "4294967295", "uid", "0", "comm", "nginx", "exe", "/usr/sbin/nginx", "key", "(null)")
	enrichOK(t, tb, &audit.Event{ID: audit.EventID{Sec: t0/1000 + 1, Serial: 1}, Records: []*audit.Record{sc}})
	if img, ok := tb.Lookup(700, 0); !ok || img.Exe != "/usr/sbin/nginx" || img.Comm != "" || img.Source != SourceSyscall {
		t.Errorf("Lookup(700) after its own event = %+v, %v; want the executable, from the event", img, ok)
	}
}

// setuidChildEnv names, in the environment of the test binary run again
// as nobody by TestExeUnreadableAfterSetuid, the pid it looks up.
const setuidChildEnv = "AUDISP_ENRICH_TEST_PROC_PARENT"

// TestExeUnreadableAfterSetuid runs the table, as the plugin runs it after
// dropping its privileges, against a real process of another user: the test
// binary, run again as nobody (uid 65534, no capabilities), enriches an
// event whose parent is a sleep that root started. The kernel refuses
// nobody the sleep's exe link but not its stat and cmdline, so the parent
// is known by its comm and argv, without executable. Needs root.
func TestExeUnreadableAfterSetuid(t *testing.T) {
	if pid := os.Getenv(setuidChildEnv); pid != "" {
		setuidChild(t, pid)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user")
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleep.Process.Kill()
		sleep.Wait()
	}()
	// nobody must reach the binary: a copy in a directory it may search.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "proc.test")
	self, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(bin, self, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(bin, "-test.run=^TestExeUnreadableAfterSetuid$")
	child.Env = append(os.Environ(), setuidChildEnv+"="+strconv.Itoa(sleep.Process.Pid))
	child.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	const want = "parent: executable \"\" comm \"sleep\" args [\"sleep\" \"60\"]; exe unreadable 1"
	if !strings.Contains(string(out), want) {
		t.Fatalf("child as nobody said:\n%s\nwant a line %s", out, want)
	}
}

// setuidChild is TestExeUnreadableAfterSetuid's part as nobody: it prints
// the parent an event of its own gets when its parent pid is ppid.
func setuidChild(t *testing.T, ppid string) {
	if os.Getuid() != 65534 {
		t.Fatalf("uid %d, want 65534", os.Getuid())
	}
	// As nobody the exe link of a root process is refused by the kernel:
	// check it, so that the table's part below is tested against it.
	if _, err := os.Readlink("/proc/" + ppid + "/exe"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("readlink /proc/%s/exe as nobody: %v, want permission denied", ppid, err)
	}
	cfg := DefaultConfig()
	cfg.Ancestry = 1 // the sleep's ancestors are root's too: not looked up
	tb, err := New(cfg, &metrics.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(ppid)
	ev := execEvent(time.Now().UnixMilli(), os.Getpid(), n, "/usr/bin/true", "true")
	enrichOK(t, tb, ev)
	if ev.Parent == nil {
		t.Fatal("no parent")
	}
	fmt.Printf("parent: executable %q comm %q args %q; exe unreadable %d\n",
		ev.Parent.Executable, ev.Parent.Comm, ev.Parent.Args, tb.Stats().ExeUnreadable)
}
