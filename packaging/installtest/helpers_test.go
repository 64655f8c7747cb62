package installtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const (
	pkgName     = "audisp-enrich"
	serviceUser = "audisp-enrich"
	binPath     = "/usr/sbin/audisp-enrich"
	confPath    = "/etc/audisp-enrich/config.toml"
	pluginConf  = "/etc/audit/plugins.d/audisp-enrich.conf"
	pluginConf2 = "/etc/audisp/plugins.d/audisp-enrich.conf"
	stateDir    = "/var/lib/audisp-enrich"
	logDir      = "/var/log/audisp-enrich"
	eventsFile  = "/var/log/audisp-enrich/events.json"
)

// packages are the files `make package` built.
type packages struct {
	root, deb, rpm string
}

var (
	buildOnce sync.Once
	built     packages
	buildErr  string
)

// repoRoot is the module root (two levels up from this package).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// buildPackages runs `make package` once per test binary and returns the
// .deb and .rpm it produced. The binary is built to a path of its own so
// that a rebuild never replaces bin/audisp-enrich under another test.
func buildPackages(t *testing.T) packages {
	t.Helper()
	requireTool(t, "make", "make")
	buildOnce.Do(func() {
		root := repoRoot(t)
		cmd := exec.Command("make", "-C", root, "--no-print-directory", "package",
			"BIN=build/installtest/audisp-enrich", "PKG_VERSION=0.1.0", "PKG_RELEASE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = "make package: " + err.Error() + "\n" + string(out)
			return
		}
		built = packages{
			root: root,
			deb:  filepath.Join(root, "dist", "audisp-enrich_0.1.0-1_amd64.deb"),
			rpm:  filepath.Join(root, "dist", "audisp-enrich-0.1.0-1.x86_64.rpm"),
		}
		for _, p := range []string{built.deb, built.rpm} {
			if _, err := os.Stat(p); err != nil {
				buildErr = "make package did not produce " + p + "\n" + string(out)
			}
		}
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return built
}

// requireRoot fails the test unless it runs as root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the install tests need root (they install the package with dpkg)")
	}
}

// requireTool fails with the Debian package to install when name is missing.
func requireTool(t *testing.T, name, debPkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install the Debian package %s (.ci/run does)", name, debPkg)
	}
}

// run runs a command and fails the test when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// installed reports whether dpkg knows the package in any state but
// not-installed (config-files counts: purge is still due).
func installed() bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status}", pkgName).Output()
	return err == nil && len(out) > 0 && string(out) != "not-installed"
}

// purge removes the package with everything it made; errors are reported.
func purge(t *testing.T) {
	t.Helper()
	if !installed() {
		return
	}
	if out, err := exec.Command("dpkg", "--purge", pkgName).CombinedOutput(); err != nil {
		t.Errorf("cleanup: dpkg --purge %s: %v\n%s", pkgName, err, out)
	}
}

// fileCheck is an expected path with its type, mode and owner.
type fileCheck struct {
	path         string
	dir          bool
	mode         os.FileMode
	owner, group string
}

// checkFile compares path with want.
func checkFile(t *testing.T, want fileCheck) {
	t.Helper()
	st, err := os.Lstat(want.path)
	if err != nil {
		t.Errorf("%s: %v", want.path, err)
		return
	}
	if st.IsDir() != want.dir {
		t.Errorf("%s: is dir %v, want %v", want.path, st.IsDir(), want.dir)
	}
	if !want.dir && !st.Mode().IsRegular() {
		t.Errorf("%s: mode %v, want a regular file", want.path, st.Mode())
	}
	if got := st.Mode().Perm(); got != want.mode {
		t.Errorf("%s: mode %#o, want %#o", want.path, got, want.mode)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if got := userName(sys.Uid); got != want.owner {
		t.Errorf("%s: owner %s, want %s", want.path, got, want.owner)
	}
	if got := groupName(sys.Gid); got != want.group {
		t.Errorf("%s: group %s, want %s", want.path, got, want.group)
	}
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}

// passwdEntry returns the /etc/passwd fields of name, or nil.
func passwdEntry(name string) []string {
	return dbEntry("/etc/passwd", name)
}

// groupEntry returns the /etc/group fields of name, or nil.
func groupEntry(name string) []string {
	return dbEntry("/etc/group", name)
}

func dbEntry(file, name string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if fields[0] == name {
			return fields
		}
	}
	return nil
}

// gunzip returns the uncompressed content of a gzip file.
func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// procStatus returns the "Name: value" lines of /proc/PID/status.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// pluginPIDs returns the processes running /usr/sbin/audisp-enrich whose
// parent is ppid.
func pluginPIDs(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != binPath {
			continue
		}
		st, err := procStatus(pid)
		if err == nil && st["PPid"] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mitreNotice returns the ATT&CK notice from the generated catalog's
// header comment, one line per comment line.
func mitreNotice(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "enrich", "attack", "catalog_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "//") {
			if in {
				break
			}
			continue
		}
		text := strings.TrimSpace(strings.TrimPrefix(l, "//"))
		if text == "ATT&CK®" {
			in = true
		}
		if in && text != "" {
			lines = append(lines, text)
		}
	}
	if len(lines) < 5 {
		t.Fatalf("MITRE notice not found in catalog_gen.go header")
	}
	return lines
}

// checkCopyright checks that the copyright file carries MITRE's notice
// verbatim (one DEP-5 continuation line per notice line).
func checkCopyright(t *testing.T, root string, data []byte) {
	t.Helper()
	text := string(data)
	if !strings.HasPrefix(text, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Errorf("copyright is not in the machine-readable format")
	}
	for _, l := range mitreNotice(t, root) {
		if !strings.Contains(text, "\n "+l+"\n") {
			t.Errorf("copyright lacks the MITRE notice line %q", l)
		}
	}
}

// firstLine returns the first line of b.
func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	return string(l)
}
