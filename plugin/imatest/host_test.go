package imatest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// CacheDir holds the extracted kernel between runs, outside the repository.
// Override it with AUDISP_IMA_CACHE.
const CacheDir = "/var/cache/audisp-enrich-ima"

// Environment variables a user can set to run the test on their own kernel.
const (
	envKernel = "AUDISP_IMA_KERNEL" // path of a bzImage/vmlinuz with CONFIG_IMA=y
	envCache  = "AUDISP_IMA_CACHE"  // cache directory instead of CacheDir
	envKeep   = "AUDISP_IMA_KEEP"   // keep the work directory even when the test passes
	envAppend = "AUDISP_IMA_APPEND" // extra kernel command line arguments
)

// hostTool is a program the test runs on the host and the Debian package
// that provides it.
type hostTool struct{ path, pkg string }

var hostTools = []hostTool{
	{"/usr/bin/qemu-system-x86_64", "qemu-system-x86"},
	{"/bin/busybox", "busybox-static"},
	{"/sbin/auditd", "auditd"},
	{"/sbin/auditctl", "auditd"},
	{"/usr/bin/dpkg-deb", "dpkg"},
	{"/usr/bin/cpio", "cpio"}, // only to check the initramfs writer
	{"/usr/bin/apt-get", "apt"},
}

// ensureTools installs the Debian packages of missing host tools with
// apt-get, and fails the test with the list when that is impossible.
func ensureTools(t *testing.T) {
	var missing []string
	for _, h := range hostTools {
		if _, err := os.Stat(h.path); err != nil {
			missing = append(missing, h.pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	t.Logf("installing missing packages: %v", missing)
	if out, err := aptGet(append([]string{"install", "-y", "--no-install-recommends"}, missing...)...); err != nil {
		t.Logf("apt-get install failed (%v), running apt-get update first:\n%s", err, out)
		if out, err := aptGet("update"); err != nil {
			t.Fatalf("apt-get update: %v\n%s", err, out)
		}
		if out, err := aptGet(append([]string{"install", "-y", "--no-install-recommends"}, missing...)...); err != nil {
			t.Fatalf("cannot install %v (needed by the IMA test): %v\n%s", missing, err, out)
		}
	}
	for _, h := range hostTools {
		if _, err := os.Stat(h.path); err != nil {
			t.Fatalf("%s still missing after installing %s", h.path, h.pkg)
		}
	}
}

func aptGet(args ...string) ([]byte, error) {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// guestKernel returns the path of the kernel image to boot: $AUDISP_IMA_KERNEL
// when set, otherwise vmlinuz from Debian's current kernel package (the one
// linux-image-amd64 depends on), downloaded once into the cache directory.
func guestKernel(t *testing.T) string {
	if k := os.Getenv(envKernel); k != "" {
		if _, err := os.Stat(k); err != nil {
			t.Fatalf("%s=%s: %v", envKernel, k, err)
		}
		return k
	}
	dir := CacheDir
	if d := os.Getenv(envCache); d != "" {
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("kernel cache: %v", err)
	}
	unlock := lockFile(t, filepath.Join(dir, ".lock"))
	defer unlock()

	for attempt := 0; ; attempt++ {
		pkg := kernelPackage(t)
		vmlinuz := filepath.Join(dir, pkg, "vmlinuz")
		if _, err := os.Stat(vmlinuz); err == nil {
			return vmlinuz
		}
		t.Logf("downloading %s into %s (once; later runs use the cache)", pkg, dir)
		cmd := exec.Command("apt-get", "download", pkg)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			extractDownloaded(t, dir, pkg)
			return vmlinuz
		}
		if attempt > 0 {
			t.Fatalf("apt-get download %s (after apt-get update): %v\n%s", pkg, err, out)
		}
		// Stale package lists name a version the mirror no longer has.
		t.Logf("apt-get download %s: %v\n%s\nrunning apt-get update and retrying", pkg, err, out)
		if out, err := aptGet("update"); err != nil {
			t.Fatalf("apt-get update: %v\n%s", err, out)
		}
	}
}

// extractDownloaded extracts the kernel from the .deb that apt-get download
// left in dir into dir/pkg, then deletes the .deb.
func extractDownloaded(t *testing.T, dir, pkg string) {
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) == 0 {
		t.Fatalf("apt-get download %s left no .deb in %s", pkg, dir)
	}
	if err := extractKernel(debs[0], filepath.Join(dir, pkg)); err != nil {
		t.Fatalf("extract kernel from %s: %v", debs[0], err)
	}
	for _, d := range debs {
		os.Remove(d) // only vmlinuz and config are kept (about 8 MB instead of 70)
	}
}

// kernelPackage names the versioned package linux-image-amd64 depends on,
// running apt-get update once when the package lists are missing.
func kernelPackage(t *testing.T) string {
	re := regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9]\S*)`)
	for attempt := 0; ; attempt++ {
		out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").CombinedOutput()
		if m := re.FindSubmatch(out); err == nil && m != nil {
			return string(m[1])
		}
		if attempt > 0 {
			t.Fatalf("apt-cache depends linux-image-amd64 names no kernel package: %v\n%s", err, out)
		}
		if out, err := aptGet("update"); err != nil {
			t.Fatalf("apt-get update: %v\n%s", err, out)
		}
	}
}

// extractKernel copies boot/vmlinuz-* and boot/config-* out of a kernel
// .deb into dir as vmlinuz and config. The modules are not needed: the
// guest runs entirely from its initramfs.
func extractKernel(deb, dir string) error {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	found := 0
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", deb, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		var out string
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			out = "vmlinuz"
		case strings.HasPrefix(name, "boot/config-"):
			out = "config"
		default:
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, out), b, 0o644); err != nil {
			return err
		}
		found++
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb: %v: %s", err, stderr.Bytes())
	}
	if found != 2 {
		return fmt.Errorf("%s holds no boot/vmlinuz-* or boot/config-*", deb)
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

// checkKernelConfig fails the test when the kernel's config (kept beside a
// cached vmlinuz) lacks what the test relies on. Kernels given through
// $AUDISP_IMA_KERNEL carry no config file and are not checked.
func checkKernelConfig(t *testing.T, vmlinuz string) {
	f, err := os.Open(filepath.Join(filepath.Dir(vmlinuz), "config"))
	if err != nil {
		return
	}
	defer f.Close()
	need := map[string]bool{"CONFIG_IMA=y": false, "CONFIG_INTEGRITY_AUDIT=y": false,
		"CONFIG_AUDITSYSCALL=y": false, "CONFIG_SECURITYFS=y": false, "CONFIG_DEVTMPFS=y": false}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, ok := need[sc.Text()]; ok {
			need[sc.Text()] = true
		}
	}
	for k, ok := range need {
		if !ok {
			t.Errorf("kernel config %s lacks %s", f.Name(), k)
		}
	}
}

// lockFile takes an exclusive flock on p and returns its release.
func lockFile(t *testing.T, p string) func() {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("lock %s: %v", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("flock %s: %v", p, err)
	}
	return func() { f.Close() }
}

// moduleRoot returns the directory of the go.mod this test belongs to.
func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

// buildPlugin builds cmd/audisp-enrich as a static binary into dir and
// returns its path.
func buildPlugin(t *testing.T, dir string) string {
	out := filepath.Join(dir, "audisp-enrich")
	if err := testsupport.GoBuild(out, "./plugin/cmd/audisp-enrich", "-trimpath"); err != nil {
		t.Fatal(err)
	}
	return out
}

// sharedLibs lists the absolute paths of the shared libraries bin loads,
// the dynamic loader included, as ldd reports them.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %v", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	return libs, nil
}
