package auditdtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ChrootCache holds the Debian roots made by Chroot between runs, outside
// the repository (like the IMA test's kernel cache). AUDISP_AUDITD_CHROOTS
// overrides it.
const ChrootCache = "/var/cache/audisp-enrich-auditd"

// Mirror is the Debian mirror debootstrap uses; AUDISP_DEBIAN_MIRROR
// overrides it.
const Mirror = "http://deb.debian.org/debian"

// Suite is a Debian suite whose auditd the tests run, with the auditd
// version it is expected to carry (a prefix of the package version).
type Suite struct {
	Name   string // debootstrap suite: "trixie", "sid"
	Auditd string // expected auditd upstream version prefix: "4.0.2"
}

// Suites4 are the Debian suites that carry auditd 4.x: trixie has 4.0.2
// (binary frames of fixed size), sid 4.2.1 (exact-size frames, since 4.1.1).
var Suites4 = []Suite{{"trixie", "4.0.2"}, {"sid", "4.2.1"}}

// Chroot returns a minimal Debian root of suite with auditd installed:
// `debootstrap --variant=minbase --include=auditd`, made once into
// ChrootCache/NAME and reused while its auditd has the expected version
// (a newer upload to the suite makes it again). Concurrent callers wait on
// a lock file. The test is skipped, with the reason, when the root cannot
// be made here (no debootstrap and no way to install it, no mirror).
func Chroot(t testing.TB, s Suite) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("auditd %s (%s) in a chroot needs root", s.Auditd, s.Name)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		out, err := aptGet("install", "-y", "--no-install-recommends", "debootstrap")
		if err != nil {
			t.Skipf("cannot run auditd %s (%s): debootstrap is not installed and apt-get install debootstrap failed: %v\n%s", s.Auditd, s.Name, err, clipOut(out))
		}
	}
	cache := ChrootCache
	if d := os.Getenv("AUDISP_AUDITD_CHROOTS"); d != "" {
		cache = d
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Skipf("cannot run auditd %s (%s): chroot cache: %v", s.Auditd, s.Name, err)
	}
	unlock := flockFile(t, filepath.Join(cache, "."+s.Name+".lock"))
	defer unlock()
	root := filepath.Join(cache, s.Name)
	if v := rootAuditd(root); v != "" {
		if strings.HasPrefix(v, s.Auditd) {
			return root
		}
		t.Logf("%s holds auditd %s, want %s: making it again", root, v, s.Auditd)
	}
	mirror := Mirror
	if m := os.Getenv("AUDISP_DEBIAN_MIRROR"); m != "" {
		mirror = m
	}
	tmp := root + ".new"
	_ = os.RemoveAll(tmp)
	start := time.Now()
	t.Logf("debootstrap --variant=minbase --include=auditd %s from %s into %s (once; later runs use the cache)", s.Name, mirror, root)
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include=auditd", s.Name, tmp, mirror).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(tmp)
		t.Skipf("cannot run auditd %s: debootstrap of %s from %s failed: %v\n%s", s.Auditd, s.Name, mirror, err, clipOut(out))
	}
	v := rootAuditd(tmp)
	if !strings.HasPrefix(v, s.Auditd) {
		_ = os.RemoveAll(tmp)
		t.Skipf("cannot run auditd %s: Debian %s now carries auditd %q", s.Auditd, s.Name, v)
	}
	_ = os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		t.Fatalf("chroot cache: %v", err)
	}
	t.Logf("made %s (auditd %s) in %s", root, v, time.Since(start).Round(time.Second))
	return root
}

// rootAuditd returns the upstream version of the auditd installed in root
// ("4.0.2"), or "" when there is none.
func rootAuditd(root string) string {
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/auditd")); err != nil {
		return ""
	}
	out, err := exec.Command("chroot", root, "dpkg-query", "-W", "-f=${Version}", "auditd").Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:] // epoch
	}
	if i := strings.IndexByte(v, '-'); i >= 0 {
		v = v[:i] // Debian revision
	}
	return v
}

// Version returns the auditd version of a root made by Chroot.
func Version(root string) string { return rootAuditd(root) }

// TempDir returns a new directory under root's /tmp, as a host path and as
// the path seen inside root; it is removed when the test ends. With root
// "" both are t.TempDir().
func TempDir(t testing.TB, root string) (host, inner string) {
	t.Helper()
	if root == "" {
		d := t.TempDir()
		return d, d
	}
	host, err := os.MkdirTemp(filepath.Join(root, "tmp"), "auditdtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	return host, strings.TrimPrefix(host, root)
}

func aptGet(args ...string) ([]byte, error) {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

func flockFile(t testing.TB, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("flock: %v", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

func clipOut(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// msgLog collects syslog messages; it is safe for concurrent use and
// prints as "" when nil or empty.
type msgLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (m *msgLog) String() string {
	if m == nil {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buf.Len() == 0 {
		return ""
	}
	return "syslog:\n" + m.buf.String()
}

// catchSyslog receives the datagrams sent to path (a root's /dev/log, where
// nothing listens) until the test ends, so that what a chrooted auditd
// logs can be shown when it fails.
func catchSyslog(t testing.TB, path string) *msgLog {
	m := &msgLog{}
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Logf("cannot listen on %s (auditd's messages will not be shown): %v", path, err)
		return m
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 8192)
		for {
			n, err := conn.Read(b)
			if err != nil {
				return
			}
			m.mu.Lock()
			m.buf.Write(b[:n])
			m.buf.WriteByte('\n')
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		os.Remove(path)
	})
	return m
}
