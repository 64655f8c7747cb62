// Package testsupport holds the small helpers that tests of many packages
// need: free loopback ports, a probe for a listening peer, polling with a
// deadline, a log buffer safe for concurrent writers, the -short skip of
// long tests and the lookup of the ../shared checkout.
//
// It lives under plugin/ beside auditdtest, the other test helper that
// tests across enrich/, sinks/ and packaging/ import; the design card keeps
// the top level to plugin/, enrich/, sinks/, conf/ and packaging/. Only
// tests import it. It imports nothing of this module, only the standard
// library, so any package's tests can use it without a cycle.
package testsupport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreePort returns a loopback port ("tcp" or "udp") that was free a moment
// ago: the kernel picks it (port 0), so parallel tests of other packages and
// other users of the machine do not collide on a fixed number.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	t.Fatalf("FreePort: network %q, want tcp or udp", network)
	return 0
}

// Listening reports whether some local address has port open: a TCP socket
// in LISTEN state ("tcp") or a bound UDP socket ("udp"), IPv4 or IPv6. It
// reads /proc/net, so the probe sends nothing to the peer (a connect would
// count as a client in some peers' logs and statistics).
func Listening(network string, port int) bool {
	suffix := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/" + network, "/proc/net/" + network + "6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 3 && strings.HasSuffix(fs[1], suffix) && (network == "udp" || fs[3] == "0A") {
				return true
			}
		}
	}
	return false
}

// Until polls cond until it holds or d passes, and reports whether it held.
// It checks at once, then at growing intervals (2 ms doubling up to 100 ms),
// so quick conditions are seen quickly and slow ones (a metrics scrape, a
// log file read) are not hammered; cond is checked once more at the
// deadline.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	wait := 2 * time.Millisecond
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(min(wait, time.Until(deadline)))
		wait = min(2*wait, 100*time.Millisecond)
	}
	return cond()
}

// WaitFor is Until that fails the test ("timed out after d waiting for
// what") when cond does not hold within d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent Write and String: a log
// handler or a child's stderr writes while the test reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SkipShort skips t under `go test -short` (make check), saying why the
// test is not a short one: it needs root or a service (a real auditd,
// rsyslogd, kcat, QEMU, dpkg), or takes long.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped under -short: %s", why)
	}
}

// ModuleRoot returns the directory holding go.mod, found by walking up
// from the working directory (go test runs in the package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// DocBlock returns the text of the repository's file doc (e.g.
// "docs/schema.md") between the first open after the first after and the
// next close, or fails t naming the file and the markers.
func DocBlock(t testing.TB, doc, after, open, close string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(root, doc))
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(text), after)
	_, block, _ = strings.Cut(block, open)
	block, _, ok := strings.Cut(block, close)
	if !ok {
		t.Fatalf("%s: no %q … %q after %q", doc, open, close, after)
	}
	return block
}

// SharedDir returns the directory sub of the shared checkout (../shared
// next to the repository: the design, Sigma rules, ECS and ATT&CK tables),
// or skips t with a message naming the path when it is absent.
func SharedDir(t testing.TB, sub string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(root), "shared", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("the shared checkout is absent (%v): this test reads %s, which lives next to the repository, not in it", err, p)
	}
	return p
}

// GoBuild builds the main package pkg (relative to the module root, such as
// "./plugin/cmd/audisp-enrich") as a static binary (CGO_ENABLED=0) at out,
// with the extra go build flags. The error holds go build's output.
func GoBuild(out, pkg string, flags ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CGO_ENABLED=0 go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

var plugin struct {
	once      sync.Once
	dir, path string
	err       error
}

// PluginBinary returns the audisp-enrich binary, built once per test
// process (GoBuild of ./plugin/cmd/audisp-enrich), with the mode auditd
// demands of plugins (0750, owned by the user running the tests) in a
// directory every user can traverse (a service user must reach it). A
// package whose tests call it runs them through Main, which removes it.
func PluginBinary(t testing.TB) string {
	t.Helper()
	plugin.once.Do(func() {
		if plugin.dir, plugin.err = os.MkdirTemp("", "audisp-enrich-test-bin-"); plugin.err != nil {
			return
		}
		if plugin.err = os.Chmod(plugin.dir, 0o755); plugin.err != nil {
			return
		}
		path := filepath.Join(plugin.dir, "audisp-enrich")
		if plugin.err = GoBuild(path, "./plugin/cmd/audisp-enrich"); plugin.err != nil {
			return
		}
		if plugin.err = os.Chmod(path, 0o750); plugin.err == nil {
			plugin.path = path
		}
	})
	if plugin.err != nil {
		t.Fatalf("building the plugin: %v", plugin.err)
	}
	return plugin.path
}

// Main runs the tests of a package (call it from TestMain) and then removes
// the binary PluginBinary built, if any.
func Main(m *testing.M) {
	code := m.Run()
	if plugin.dir != "" {
		os.RemoveAll(plugin.dir)
	}
	os.Exit(code)
}

// SigmaRule returns the text of a Sigma rule for the module's tests
// (author "audisp-enrich tests", logsource product linux, category
// process_creation): its title, id, level, tags (none when empty) and a
// single selection of the given lines, each "Field|modifier: value".
func SigmaRule(title, id, level string, tags []string, selection ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "title: %s\nid: %s\nauthor: audisp-enrich tests\nlevel: %s\n", title, id, level)
	if len(tags) > 0 {
		b.WriteString("tags:\n")
		for _, tag := range tags {
			b.WriteString("    - " + tag + "\n")
		}
	}
	b.WriteString("logsource:\n    product: linux\n    category: process_creation\ndetection:\n    selection:\n")
	for _, l := range selection {
		b.WriteString("        " + l + "\n")
	}
	b.WriteString("    condition: selection\n")
	return b.String()
}

// SigmaSection returns an [enrich.sigma] config section that loads the
// rules $AUDISP_ENRICH_SIGMA_RULES names (comma-separated files or
// directories; "shared": SigmaHQ's Linux rules in ../shared/sigma), with
// polling off, or "" when the variable is empty. The benchmarks of the
// whole pipeline use it (make bench-ratio and live-cost SIGMA_RULES=...).
func SigmaSection(t testing.TB) string {
	t.Helper()
	v := os.Getenv("AUDISP_ENRICH_SIGMA_RULES")
	if v == "" {
		return ""
	}
	var paths []string
	if v == "shared" {
		base := SharedDir(t, "sigma")
		paths = []string{filepath.Join(base, "rules", "linux"), filepath.Join(base, "rules-threat-hunting", "linux")}
	} else {
		paths = strings.Split(v, ",")
	}
	quoted := make([]string, len(paths))
	for i, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		quoted[i] = fmt.Sprintf("%q", abs)
	}
	return "[enrich.sigma]\nrules = [" + strings.Join(quoted, ", ") + "]\nreload_interval = \"0s\"\n"
}
