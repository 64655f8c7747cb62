package proc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

const (
	hexA = "8e7f5a1c3b2d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7"
	hexB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	podU = "6f3c9b1e-2a4d-4c8b-9e7f-1a2b3c4d5e6f"
)

// TestParseCgroupPath covers the path shapes container runtimes and
// systemd make, on cgroup v1 and v2.
func TestParseCgroupPath(t *testing.T) {
	podUnderscore := strings.ReplaceAll(podU, "-", "_")
	for _, c := range []struct {
		path string
		want audit.Cgroup // Path is filled in from path
	}{
		// Docker, systemd driver (v1 and v2) and cgroupfs driver (v1).
		{"/system.slice/docker-" + hexA + ".scope", audit.Cgroup{ContainerID: hexA, Runtime: "docker"}},
		{"/docker/" + hexA, audit.Cgroup{ContainerID: hexA, Runtime: "docker"}},
		// Podman: root (machine.slice, with its inner "container" cgroup),
		// rootless (under the user manager), cgroupfs driver; conmon is not
		// in the container.
		{"/machine.slice/libpod-" + hexA + ".scope", audit.Cgroup{ContainerID: hexA, Runtime: "podman"}},
		{"/machine.slice/libpod-" + hexA + ".scope/container", audit.Cgroup{ContainerID: hexA, Runtime: "podman"}},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + hexA + ".scope",
			audit.Cgroup{ContainerID: hexA, Runtime: "podman", Unit: "user@1000.service"}},
		{"/libpod_parent/libpod-" + hexA, audit.Cgroup{ContainerID: hexA, Runtime: "podman"}},
		{"/machine.slice/libpod-conmon-" + hexA + ".scope", audit.Cgroup{}},
		// Kubernetes, systemd driver: containerd, CRI-O (and its conmon),
		// Docker; guaranteed pods have no QoS slice.
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnderscore + ".slice/cri-containerd-" + hexA + ".scope",
			audit.Cgroup{ContainerID: hexA, Runtime: "containerd", PodUID: podU}},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podUnderscore + ".slice/crio-" + hexB + ".scope",
			audit.Cgroup{ContainerID: hexB, Runtime: "cri-o", PodUID: podU}},
		{"/kubepods.slice/kubepods-pod" + podUnderscore + ".slice/crio-" + hexB + ".scope",
			audit.Cgroup{ContainerID: hexB, Runtime: "cri-o", PodUID: podU}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnderscore + ".slice/crio-conmon-" + hexB + ".scope", audit.Cgroup{}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podUnderscore + ".slice/docker-" + hexA + ".scope",
			audit.Cgroup{ContainerID: hexA, Runtime: "docker", PodUID: podU}},
		// Kubernetes, systemd driver, over containerd with runc's cgroupfs
		// driver (SystemdCgroup off): below containerd's own cgroup, whose
		// unit is not the container's.
		{"/system.slice/containerd.service/kubepods-burstable-pod" + podUnderscore + ".slice:cri-containerd:" + hexA,
			audit.Cgroup{ContainerID: hexA, Runtime: "containerd", PodUID: podU}},
		{"/system.slice/containerd.service/kubepods-pod" + podUnderscore + ".slice:cri-containerd:" + hexB,
			audit.Cgroup{ContainerID: hexB, Runtime: "containerd", PodUID: podU}},
		{"/system.slice/containerd.service/kubepods-besteffort-pod" + podUnderscore + ".slice:crio:" + hexB,
			audit.Cgroup{ContainerID: hexB, Runtime: "cri-o", PodUID: podU}},
		{"/system.slice/containerd.service/kubepods-burstable-pod" + podUnderscore + ".slice:cri-containerd:" + hexA[:12],
			audit.Cgroup{Unit: "containerd.service"}},
		{"/system.slice/containerd.service/kubepods-burstable-pod" + podUnderscore + ".slice:unknown:" + hexA,
			audit.Cgroup{Unit: "containerd.service"}},
		{"/system.slice/containerd.service/kubepods-pod" + podUnderscore + ".slice:cri-containerd:" + hexB + "/system.slice/nginx.service",
			audit.Cgroup{ContainerID: hexB, Runtime: "containerd", PodUID: podU, Unit: "nginx.service"}},
		// Standalone containerd (nerdctl), systemd driver.
		{"/system.slice/nerdctl-" + hexA + ".scope", audit.Cgroup{ContainerID: hexA, Runtime: "containerd"}},
		// Kubernetes, cgroupfs driver: the runtime is not in the path.
		{"/kubepods/burstable/pod" + podU + "/" + hexA, audit.Cgroup{ContainerID: hexA, PodUID: podU}},
		{"/kubepods/pod" + podU + "/" + hexB, audit.Cgroup{ContainerID: hexB, PodUID: podU}},
		// The pod's own cgroup (no container yet) is no container.
		{"/kubepods/burstable/pod" + podU, audit.Cgroup{}},
		// systemd units: system services, template instances, escaped
		// names, user units under the user manager, the manager itself,
		// login sessions (scopes are not services).
		{"/system.slice/nginx.service", audit.Cgroup{Unit: "nginx.service"}},
		{"/system.slice/system-getty.slice/getty@tty1.service", audit.Cgroup{Unit: "getty@tty1.service"}},
		{`/system.slice/systemd-fsck@dev-disk-by\x2duuid-1234.service`, audit.Cgroup{Unit: `systemd-fsck@dev-disk-by\x2duuid-1234.service`}},
		{"/system.slice/containerd.service", audit.Cgroup{Unit: "containerd.service"}},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", audit.Cgroup{Unit: "foo.service", UserOf: "1000"}},
		{"/user.slice/user-1000.slice/user@1000.service/session.slice/dbus.service", audit.Cgroup{Unit: "dbus.service", UserOf: "1000"}},
		{"/user.slice/user-1000.slice/user@1000.service/init.scope", audit.Cgroup{Unit: "user@1000.service"}},
		{"/user.slice/user-1000.slice/session-3.scope", audit.Cgroup{}},
		{"/init.scope", audit.Cgroup{}},
		// A service inside a container.
		{"/system.slice/docker-" + hexA + ".scope/system.slice/nginx.service", audit.Cgroup{ContainerID: hexA, Runtime: "docker", Unit: "nginx.service"}},
		// Not containers: a short id, upper-case hex, a 64-hex name
		// outside a runtime's parent.
		{"/docker/" + hexA[:12], audit.Cgroup{}},
		{"/docker/" + strings.ToUpper(hexA), audit.Cgroup{}},
		{"/somewhere/" + hexA, audit.Cgroup{}},
		{"/", audit.Cgroup{}},
		{"", audit.Cgroup{}},
	} {
		c.want.Path = c.path
		if got := ParseCgroupPath(c.path); got != c.want {
			t.Errorf("ParseCgroupPath(%q)\n got %+v\nwant %+v", c.path, got, c.want)
		}
	}
}

// TestParseCgroupFile reads whole files: hybrid v1 (docker's cgroupfs
// driver shows the container only in controller lines), pure v2, and the
// unit taken from the v2 line before the name=systemd one.
func TestParseCgroupFile(t *testing.T) {
	for _, c := range []struct {
		name, file string
		want       audit.Cgroup
	}{
		{"v1 cgroupfs docker", "12:memory:/docker/" + hexA + "\n11:pids:/docker/" + hexA + "\n1:name=systemd:/docker/" + hexA + "\n0::/\n",
			audit.Cgroup{Path: "/docker/" + hexA, ContainerID: hexA, Runtime: "docker"}},
		{"v1 controllers only", "3:memory:/docker/" + hexA + "\n0::/system.slice/containerd.service\n",
			audit.Cgroup{Path: "/docker/" + hexA, ContainerID: hexA, Runtime: "docker", Unit: "containerd.service"}},
		{"v2 docker", "0::/system.slice/docker-" + hexA + ".scope\n",
			audit.Cgroup{Path: "/system.slice/docker-" + hexA + ".scope", ContainerID: hexA, Runtime: "docker"}},
		{"v1 systemd unit", "9:name=systemd:/system.slice/cron.service\n8:pids:/system.slice/cron.service\n0::/\n",
			audit.Cgroup{Path: "/system.slice/cron.service", Unit: "cron.service"}},
		{"colon in path", "0::/a:b/nginx.service", audit.Cgroup{Path: "/a:b/nginx.service", Unit: "nginx.service"}},
		{"root only", "0::/\n", audit.Cgroup{Path: "/"}},
		{"garbage", "no colons here\n:\n", audit.Cgroup{}},
		{"empty", "", audit.Cgroup{}},
	} {
		if got := ParseCgroupFile([]byte(c.file)); got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

// TestParseOwnCgroupFile parses this machine's /proc/self/cgroup: a real
// file of the running kernel. Its paths are the facts to find: the unit is
// the deepest *.service of the v2 (else name=systemd) path, if any.
func TestParseOwnCgroupFile(t *testing.T) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	t.Logf("/proc/self/cgroup:\n%s", b)
	got := ParseCgroupFile(b)
	var v2, sd string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			v2 = p
		} else if _, p, ok := strings.Cut(line, ":name=systemd:"); ok {
			sd = p
		}
	}
	want := v2
	if want == "" {
		want = sd
	}
	if got.Path == "" || (got.ContainerID == "" && got.Path != want) {
		t.Fatalf("parsed %+v, want path %q", got, want)
	}
	wantUnit := ""
	for _, p := range []string{v2, sd} {
		for _, c := range strings.Split(p, "/") {
			if strings.HasSuffix(c, ".service") {
				wantUnit = c
			}
		}
		if wantUnit != "" {
			break
		}
	}
	if got.Unit != wantUnit {
		t.Errorf("unit %q, want %q", got.Unit, wantUnit)
	}
}

// FuzzParseCgroupFile checks that any file parses without panicking, that
// an id found is 64 lower-case hex digits and its path names it, that a
// unit found is a *.service component of the path, and that parsing a file
// made of the path found again gives the same facts.
func FuzzParseCgroupFile(f *testing.F) {
	f.Add([]byte("0::/system.slice/docker-" + hexA + ".scope\n"))
	f.Add([]byte("12:memory:/docker/" + hexA + "\n0::/system.slice/containerd.service\n"))
	f.Add([]byte("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podU, "-", "_") + ".slice/cri-containerd-" + hexA + ".scope"))
	f.Add([]byte("0::/kubepods/burstable/pod" + podU + "/" + hexA))
	f.Add([]byte("0::/system.slice/containerd.service/kubepods-burstable-pod" + strings.ReplaceAll(podU, "-", "_") + ".slice:cri-containerd:" + hexA))
	f.Add([]byte("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"))
	f.Add([]byte("::\n0:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cg := ParseCgroupFile(b)
		if cg.ContainerID != "" && (!isHex64(cg.ContainerID) || !strings.Contains(cg.Path, cg.ContainerID)) {
			t.Fatalf("container %q from path %q", cg.ContainerID, cg.Path)
		}
		if cg.Unit != "" && (!strings.HasSuffix(cg.Unit, ".service") || !strings.Contains(string(b), cg.Unit)) {
			t.Fatalf("unit %q not in the file", cg.Unit)
		}
		if cg.PodUID != "" && cg.ContainerID == "" {
			t.Fatalf("pod %q without a container", cg.PodUID)
		}
		if cg.ContainerID != "" || cg.Unit != "" {
			again := ParseCgroupPath(cg.Path)
			if cg.ContainerID != "" && again.ContainerID != cg.ContainerID {
				t.Fatalf("path %q parsed again: %+v, first %+v", cg.Path, again, cg)
			}
		}
	})
}

// TestReadInto reads procfs and regular files the way the table does (one
// read): whole when shorter than the buffer, cut at the buffer's size, and
// "not exist" for a process that is gone.
func TestReadInto(t *testing.T) {
	want, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	buf := make([]byte, maxCgroupFile)
	n, err := readInto("/proc/self/cgroup", buf)
	if err != nil || string(buf[:n]) != string(want) {
		t.Fatalf("readInto /proc/self/cgroup: %q, %v; want %q", buf[:n], err, want)
	}
	long := strings.Repeat("0123456789", 1000)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := readInto(path, buf[:100]); err != nil || string(buf[:n]) != long[:100] {
		t.Errorf("cut read: %q, %v", buf[:n], err)
	}
	if b, err := readBounded(path, 1<<20); err != nil || string(b) != long {
		t.Errorf("whole read: %d bytes, %v", len(b), err)
	}
	if _, err := readInto("/proc/0/cgroup", buf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gone process: %v, want not exist", err)
	}
}

// TestCgroupReadOncePerImage: with cgroup on, the table reads the cgroup
// file of a process once per image it learns; further events of the same
// image (table hits) read nothing, a new exec of the pid reads again, and
// the events carry the parsed file of the live process (this test's own).
func TestCgroupReadOncePerImage(t *testing.T) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	want := ParseCgroupFile(b)
	if want.Path == "" {
		t.Skipf("own cgroup file names no cgroup: %q", b)
	}
	tb := tableWith(t, Config{ProcFallback: true, Cgroup: true, Ancestry: 1})
	pid := os.Getpid()
	const t0 = 1_700_000_000_000
	for i := range 5 {
		ev := syscallEvent(t0+int64(i), pid, 0, "/usr/bin/self", "self")
		enrichOK(t, tb, ev)
		if ev.Cgroup == nil || *ev.Cgroup != want {
			t.Fatalf("event %d: cgroup %+v, want %+v", i, ev.Cgroup, want)
		}
	}
	if n := tb.Stats().CgroupReads; n != 1 {
		t.Errorf("%d cgroup reads for five events of one image, want 1", n)
	}
	ev := execEvent(t0+10, pid, 0, "/usr/bin/other", "other")
	enrichOK(t, tb, ev)
	if n := tb.Stats().CgroupReads; n != 2 || ev.Cgroup == nil || *ev.Cgroup != want {
		t.Errorf("after an exec: %d reads (want 2), cgroup %+v", n, ev.Cgroup)
	}
}

// TestExitedRemovedAfterGrace: with cgroup on, an image whose process is
// already gone when learnt (its /proc/<pid>/cgroup does not exist) stays
// for graveGrace of event time (children's events still find it), then
// leaves the table; a live process (this test) stays, and a pid that got
// a newer image meanwhile (reused) keeps it.
func TestExitedRemovedAfterGrace(t *testing.T) {
	if _, err := os.Stat("/proc/self/cgroup"); err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	tb := tableWith(t, Config{ProcFallback: true, Cgroup: true, Ancestry: 1})
	const t0 = 1_700_000_000_000
	// Pids above the kernel's pid_max (at most 2^22) never exist.
	const gone, reused = 1<<30 + 1, 1<<30 + 2
	self := os.Getpid()
	enrichOK(t, tb, execEvent(t0, gone, self, "/usr/bin/short", "short"))
	enrichOK(t, tb, execEvent(t0, reused, self, "/usr/bin/short", "short"))
	enrichOK(t, tb, syscallEvent(t0, self, 0, "/usr/bin/self", "self"))
	child := execEvent(t0+graveGrace-1, 1<<30+3, gone, "/usr/bin/child", "child")
	enrichOK(t, tb, child)
	if child.Parent == nil || child.Parent.Executable != "/usr/bin/short" {
		t.Fatalf("within the grace: parent %+v, want the exited process", child.Parent)
	}
	// A newer image of the reused pid (a new process) is not removed.
	tb.Record(reused, Image{Exe: "/usr/bin/new", StartMilli: t0 + 10, Source: SourceExec})
	before := tb.Stats()
	enrichOK(t, tb, syscallEvent(t0+graveGrace+5, self, 0, "/usr/bin/other", "other"))
	if _, ok := tb.Lookup(gone, 0); ok {
		t.Error("exited process still in the table after the grace")
	}
	if img, ok := tb.Lookup(reused, 0); !ok || img.Exe != "/usr/bin/new" {
		t.Errorf("reused pid: %+v, %v; want its new image", img, ok)
	}
	if _, ok := tb.Lookup(self, 0); !ok {
		t.Error("live process removed")
	}
	st := tb.Stats()
	// The child (gone too) is still within its grace.
	if got := st.Exited - before.Exited; got != 1 || st.Exited != 1 {
		t.Errorf("exited %d (%d after the grace), want 1", st.Exited, got)
	}
}

// TestGraveyardBound: more exits than maxGraves within the grace remove
// the oldest early, so the table stays bounded by the graves as well.
func TestGraveyardBound(t *testing.T) {
	if _, err := os.Stat("/proc/self/cgroup"); err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	tb := tableWith(t, Config{ProcFallback: true, Cgroup: true, MaxEntries: 4 * maxGraves})
	const t0 = 1_700_000_000_000
	n := maxGraves + 100
	for i := range n {
		enrichOK(t, tb, execEvent(t0, 1<<30+i, 0, "/usr/bin/short", "short"))
	}
	st := tb.Stats()
	if st.Exited != 100 || st.Len != maxGraves {
		t.Errorf("after %d exits in one instant: %d removed early, %d held; want 100 and %d", n, st.Exited, st.Len, maxGraves)
	}
	enrichOK(t, tb, execEvent(t0+graveGrace, 1<<30+n, 0, "/usr/bin/short", "short"))
	if st := tb.Stats(); st.Len != 1 {
		t.Errorf("after the grace: %d held, want 1 (the last one)", st.Len)
	}
}

// TestGraveSerialGuardsReusedBlock: a grave names its image by block and
// serial; when the block was freed and reused by a newer image of the same
// pid, reaping the grave keeps the pid (the block number alone would match).
func TestGraveSerialGuardsReusedBlock(t *testing.T) {
	if _, err := os.Stat("/proc/self/cgroup"); err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	tb := tableWith(t, Config{ProcFallback: true, Cgroup: true, Ancestry: 1})
	const t0 = 1_700_000_000_000
	const gone = 1<<30 + 1 // above pid_max: never a live process, so buried
	self := os.Getpid()
	enrichOK(t, tb, execEvent(t0, gone, self, "/usr/bin/short", "short"))
	// Two newer images free the buried one's block; a third takes it.
	for i, exe := range []string{"/usr/bin/a", "/usr/bin/b", "/usr/bin/c"} {
		tb.Record(gone, Image{Exe: exe, StartMilli: t0 + 10 + int64(i), Source: SourceExec})
	}
	enrichOK(t, tb, syscallEvent(t0+graveGrace+5, self, 0, "/usr/bin/other", "other"))
	if img, ok := tb.Lookup(gone, 0); !ok || img.Exe != "/usr/bin/c" {
		t.Errorf("pid with a newer image in the buried one's block: %+v, %v; want its newest image kept", img, ok)
	}
	checkArena(t, tb)
}

// TestGraveAfterDrain: once the graveyard has emptied (its due time is
// "never"), a grave buried later is still reaped after the grace, at the
// next event that stores an image.
func TestGraveAfterDrain(t *testing.T) {
	if _, err := os.Stat("/proc/self/cgroup"); err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	tb := tableWith(t, Config{ProcFallback: true, Cgroup: true, Ancestry: 1})
	const t0 = 1_700_000_000_000
	self := os.Getpid()
	enrichOK(t, tb, execEvent(t0, 1<<30+1, self, "/usr/bin/short", "short"))
	enrichOK(t, tb, syscallEvent(t0+graveGrace+5, self, 0, "/usr/bin/other", "other"))
	if n := tb.Stats().Exited; n != 1 {
		t.Fatalf("first grave: %d reaped, want 1", n)
	}
	const t1 = t0 + 10_000
	enrichOK(t, tb, execEvent(t1, 1<<30+2, self, "/usr/bin/short", "short"))
	enrichOK(t, tb, syscallEvent(t1+graveGrace+5, self, 0, "/usr/bin/third", "third"))
	if _, ok := tb.Lookup(1<<30+2, 0); ok {
		t.Error("a grave buried after the graveyard drained was never reaped")
	}
}
