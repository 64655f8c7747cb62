package packages

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// dpkgRoot makes a root with a dpkg database of one package, foo 1.0 in
// the dpkg state status ("installed", "half-installed", …), owning the
// given files (path -> content), which are written executable.
func dpkgRoot(t *testing.T, status string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	info := filepath.Join(root, "var/lib/dpkg/info")
	if err := os.MkdirAll(info, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg/updates"), 0o755); err != nil {
		t.Fatal(err)
	}
	var list, sums strings.Builder
	for p, content := range files {
		writeFile(t, filepath.Join(root, p), content)
		fmt.Fprintln(&list, p)
		fmt.Fprintf(&sums, "%x  %s\n", md5.Sum([]byte(content)), strings.TrimPrefix(p, "/"))
	}
	writeFile(t, filepath.Join(info, "foo.list"), list.String())
	writeFile(t, filepath.Join(info, "foo.md5sums"), sums.String())
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"),
		"Package: foo\nStatus: install ok "+status+"\nArchitecture: all\nVersion: 1.0\n\n")
	return root
}

// writeFile writes content to p (mode 0755), by rename as dpkg does.
func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".new", []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// eventually judges file's digest until the status is want (the index
// refreshes every second), or fails after 10 s with the last answer.
func eventually(t *testing.T, e *Enricher, file, digest, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := judge(t, e, file, "sha256", digest)
		if ev.Package != nil && ev.Package.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v after 10 s, want %s", file, ev.Package, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDivertNoticed: dpkg-divert --rename changes only the diversions
// file; the index notices it at the next refresh: the package's file is
// package at its diverted path and the local file put at the original
// path is unowned (found by review: the index went on calling them
// relocated and modified until the next package operation).
func TestDivertNoticed(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg-divert"); err != nil {
		t.Skip("no dpkg-divert on this machine:", err)
	}
	orig := "#!/bin/sh\necho packaged\n"
	root := dpkgRoot(t, "installed", map[string]string{"/usr/bin/div": orig})
	cfg := testConfig(t)
	cfg.Root, cfg.Refresh = root, time.Second
	e := openEnricher(t, cfg)
	wantPackage(t, judge(t, e, "/usr/bin/div", "sha256", sha256Hex(orig)), StatusPackage, "foo", "")

	status := filepath.Join(root, "var/lib/dpkg/status")
	before, err := os.Stat(status)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "dpkg-divert", "--root", root, "--local", "--rename", "--add", "/usr/bin/div")
	if after, err := os.Stat(status); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("dpkg-divert changed the status file (%v); the test needs it unchanged", err)
	}
	local := "#!/bin/sh\necho local\n"
	writeFile(t, filepath.Join(root, "usr/bin/div"), local)
	eventually(t, e, "/usr/bin/div.distrib", sha256Hex(orig), StatusPackage)
	eventually(t, e, "/usr/bin/div", sha256Hex(local), StatusUnowned)
}

// TestUpgradeInProgressUnindexed: while dpkg replaces a package's files
// (state half-installed, in status or journalled in updates/) a file whose
// new content fails the old digest is unindexed, not modified; once the
// upgrade is recorded (installed, new md5sums) it is package (found by
// review: an upgrade in progress raised package_file_modified).
func TestUpgradeInProgressUnindexed(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			v1, v2 := "#!/bin/sh\necho 1.0\n", "#!/bin/sh\necho 2.0\n"
			root := dpkgRoot(t, "installed", map[string]string{"/usr/bin/foo": v1, "/usr/bin/bar": v1 + "bar\n"})
			cfg := testConfig(t)
			cfg.Root, cfg.Refresh = root, time.Second
			e := openEnricher(t, cfg)
			wantPackage(t, judge(t, e, "/usr/bin/foo", "sha256", sha256Hex(v1)), StatusPackage, "foo", "")

			stanza := "Package: foo\nStatus: install ok half-installed\nArchitecture: all\nVersion: 1.0\n\n"
			if journal {
				writeFile(t, filepath.Join(root, "var/lib/dpkg/updates/0000"), stanza)
			} else {
				writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), stanza)
			}
			writeFile(t, filepath.Join(root, "usr/bin/foo"), v2) // unpacked, md5sums still 1.0's
			eventually(t, e, "/usr/bin/foo", sha256Hex(v2), StatusUnindexed)
			// Three refreshes later it still is, and the old content is
			// not an unchanged file of the package either way.
			time.Sleep(3 * time.Second)
			wantPackage(t, judge(t, e, "/usr/bin/foo", "sha256", sha256Hex(v2)), StatusUnindexed, "foo", "")
			// Another file of the package, changed by no one: still package.
			wantPackage(t, judge(t, e, "/usr/bin/bar", "sha256", sha256Hex(v1+"bar\n")), StatusPackage, "foo", "")

			writeFile(t, filepath.Join(root, "var/lib/dpkg/info/foo.md5sums"),
				fmt.Sprintf("%x  usr/bin/foo\n%x  usr/bin/bar\n", md5.Sum([]byte(v2)), md5.Sum([]byte(v1+"bar\n"))))
			os.Remove(filepath.Join(root, "var/lib/dpkg/updates/0000"))
			writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), strings.Replace(stanza, "half-installed", "installed", 1))
			eventually(t, e, "/usr/bin/foo", sha256Hex(v2), StatusPackage)
		})
	}
}

// TestDamagedStoreLineRepaired: a line of packages.idx that cannot be read
// is a warning of Inspect ("packages status"), not a failure, and the next
// refresh rewrites the file without it (found by review: the line stayed
// for good and packages status failed while it did).
func TestDamagedStoreLineRepaired(t *testing.T) {
	root := dpkgRoot(t, "installed", map[string]string{"/usr/bin/foo": "#!/bin/sh\necho foo\n"})
	cfg := testConfig(t)
	cfg.Root = root
	openEnricher(t, cfg).Close()
	idx := StorePath(cfg)
	f, err := os.OpenFile(idx, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("garbage line\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := Inspect(cfg)
	if err != nil {
		t.Fatalf("Inspect with a damaged line: %v, want the stats with a warning", err)
	}
	if st.StoreBad != 1 || !st.Complete || !strings.Contains(st.String(), "1 lines of the hash file unreadable") {
		t.Fatalf("Inspect: StoreBad %d, complete %v:\n%s", st.StoreBad, st.Complete, st)
	}
	openEnricher(t, cfg).Close()
	data, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "garbage") {
		t.Fatalf("packages.idx still has the damaged line after a refresh:\n%s", data)
	}
	if st, err := Inspect(cfg); err != nil || st.StoreBad != 0 {
		t.Fatalf("Inspect after the refresh: %+v, %v", st, err)
	}
}

// TestUnreadableNotPending: a package file the index cannot read is
// reported by Inspect as unreadable, not as pending, and the index is
// complete, as the running index says (found by review: packages status
// said pending 1 and complete false for good). Root reads any file, so
// as root the check runs in a child process of this test as nobody.
func TestUnreadableNotPending(t *testing.T) {
	if dir := os.Getenv("PKGTEST_INSPECT_ROOT"); dir != "" { // the child
		cfg := testConfig(t)
		cfg.Root, cfg.StateDir = dir, filepath.Join(dir, "state")
		st, err := Inspect(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("STATS %d %d %v\n", st.Pending, st.Unreadable, st.Complete)
		return
	}
	root := dpkgRoot(t, "installed", map[string]string{"/usr/bin/foo": "#!/bin/sh\necho foo\n", "/usr/bin/bar": "#!/bin/sh\necho bar\n"})
	if err := os.Chmod(filepath.Join(root, "usr/bin/bar"), 0o311); err != nil { // executable, not readable
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		cfg := testConfig(t)
		cfg.Root = root
		st, err := Inspect(cfg)
		if err != nil || st.Pending != 1 || st.Unreadable != 1 || st.Complete {
			t.Fatalf("Inspect before hashing: %+v, %v; want foo pending, bar unreadable", st, err)
		}
		return
	}
	// Let nobody reach the tree (t.TempDir makes 0700 directories).
	for d := root; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 && strings.HasPrefix(d, os.TempDir()+"/") {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0]) // go test's binary is in a 0700 directory
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "packages.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestUnreadableNotPending$", "-test.count=1")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PKGTEST_INSPECT_ROOT="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child as nobody: %v\n%s", err, out)
	}
	// Nothing hashed yet (no state): foo pending, bar unreadable.
	if !strings.Contains(string(out), "STATS 1 1 false") {
		t.Fatalf("Inspect as nobody: want 1 pending, 1 unreadable, not complete:\n%s", out)
	}
}

// TestOutsidePathsUnindexed: with paths set, a package's file outside
// them is unindexed (the index does not judge it), not unowned, which
// says no package owns it (found by review: libc.so.6 was unowned with
// paths = /usr/bin).
func TestOutsidePathsUnindexed(t *testing.T) {
	lib := "\x7fELF not really\n"
	root := dpkgRoot(t, "installed", map[string]string{"/usr/bin/foo": "#!/bin/sh\necho foo\n", "/usr/lib/libfoo.so.1": lib})
	writeFile(t, filepath.Join(root, "usr/lib/mine.so"), "mine\n")
	cfg := testConfig(t, "/usr/bin")
	cfg.Root = root
	e := openEnricher(t, cfg)
	wantPackage(t, judge(t, e, "/usr/lib/libfoo.so.1", "sha256", sha256Hex(lib)), StatusUnindexed, "", "")
	wantPackage(t, judge(t, e, "/usr/lib/mine.so", "sha256", sha256Hex("mine\n")), StatusUnowned, "", "")
	wantPackage(t, judge(t, e, "/usr/bin/foo", "sha256", sha256Hex("#!/bin/sh\necho foo\n")), StatusPackage, "foo", "")
}

// TestSharedStateDirKeepsEachRoot: two indexes of different roots with one
// state directory keep a hash file each, so neither rehashes after the
// other ran (found by review: each replaced the other's packages.idx).
func TestSharedStateDirKeepsEachRoot(t *testing.T) {
	state := t.TempDir()
	a := testConfig(t)
	a.Root, a.StateDir = dpkgRoot(t, "installed", map[string]string{"/usr/bin/a": "#!/bin/sh\necho a\n"}), state
	b := a
	b.Root = dpkgRoot(t, "installed", map[string]string{"/usr/bin/b": "#!/bin/sh\necho b\n"})
	c := a
	c.Paths = []string{"/usr/bin"}
	if StorePath(a) == StorePath(b) || StorePath(a) == StorePath(c) {
		t.Fatalf("one hash file for other roots or paths: %s %s %s", StorePath(a), StorePath(b), StorePath(c))
	}
	for i, cfg := range []Config{a, b, c, a, b, c} {
		e := openEnricher(t, cfg)
		st := e.Index().Stats()
		e.Close()
		if want := int64(1); i >= 3 && (st.Hashed != 0 || st.Reused != want) {
			t.Errorf("run %d (%s): hashed %d, reused %d; want everything reused", i, cfg.Root, st.Hashed, st.Reused)
		}
	}
}

// TestReplacedFileOwner: a file another package took over (Replaces:) is
// still in the old package's md5sums; dpkg records the new owner in its
// .list, and the index judges the file by the new owner's digest (found
// by review: the old owner, first in status, made it modified).
func TestReplacedFileOwner(t *testing.T) {
	now := "#!/bin/sh\necho shared 2\n"
	root := dpkgRoot(t, "installed", map[string]string{"/usr/bin/shared": now})
	info := filepath.Join(root, "var/lib/dpkg/info")
	writeFile(t, filepath.Join(root, "usr/bin/aaa"), "#!/bin/sh\necho aaa\n")
	writeFile(t, filepath.Join(info, "aaa.md5sums"), fmt.Sprintf("%x  usr/bin/aaa\n%x  usr/bin/shared\n",
		md5.Sum([]byte("#!/bin/sh\necho aaa\n")), md5.Sum([]byte("#!/bin/sh\necho shared 1\n"))))
	writeFile(t, filepath.Join(info, "aaa.list"), "/.\n/usr\n/usr/bin\n/usr/bin/aaa\n")
	status := filepath.Join(root, "var/lib/dpkg/status")
	foo, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, status, "Package: aaa\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\n"+string(foo))
	cfg := testConfig(t)
	cfg.Root = root
	e := openEnricher(t, cfg)
	wantPackage(t, judge(t, e, "/usr/bin/shared", "sha256", sha256Hex(now)), StatusPackage, "foo", "")
	wantPackage(t, judge(t, e, "/usr/bin/aaa", "sha256", sha256Hex("#!/bin/sh\necho aaa\n")), StatusPackage, "aaa", "")
}

// TestTakeOverUntilComplete: a reload that changes the settings (here
// paths, so a new hash file) keeps the running index answering until the
// new one has hashed everything, then closes it (found by review: the
// hand-over came at the new index's first snapshot, published before any
// hashing, so every binary was unindexed for a whole rehash).
func TestTakeOverUntilComplete(t *testing.T) {
	files := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		files["/usr/bin/big"+n] = "#!/bin/sh\n" + strings.Repeat("#", 1<<20) + n
	}
	root := dpkgRoot(t, "installed", files)
	a := testConfig(t)
	a.Root = root
	old := openEnricher(t, a)
	b := a
	b.Paths, b.RateMB = []string{"/usr/bin"}, 1 // 3 MiB: about 3 s of hashing
	e := New(b, testLog(t), &metrics.Registry{})
	t.Cleanup(e.Close)
	e.TakeOver(old)
	for e.Index().cur.Load() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.Index().Stats(); st.Complete {
		t.Fatalf("the new index is complete at once (%+v): the test proves nothing", st)
	}
	for p, content := range files {
		wantPackage(t, judge(t, e, p, "sha256", sha256Hex(content)), StatusPackage, "foo", "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Index().Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Index().done:
	case <-time.After(10 * time.Second):
		t.Fatal("the previous index still runs 10 s after the new one is complete")
	}
	for p, content := range files {
		wantPackage(t, judge(t, e, p, "sha256", sha256Hex(content)), StatusPackage, "foo", "")
	}
}

// TestAliasInsidePathsAnyOrder: on merged /usr one file listed as
// /usr/bin/x by one package (outside paths = /bin) and as /bin/x by
// another (inside) is indexed whichever package comes first in status
// (found by review: with the outside listing first the file was marked
// seen, the inside one skipped, and both names were unindexed).
func TestAliasInsidePathsAnyOrder(t *testing.T) {
	content := "#!/bin/sh\necho x\n"
	stanza := func(name, version string) string {
		return "Package: " + name + "\nStatus: install ok installed\nArchitecture: all\nVersion: " + version + "\n\n"
	}
	for _, order := range [][2]string{{"aold", "bnew"}, {"bnew", "aold"}} {
		t.Run(order[0]+"-first", func(t *testing.T) {
			root := t.TempDir()
			info := filepath.Join(root, "var/lib/dpkg/info")
			if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg/updates"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(root, "usr/bin/x"), content)
			if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
				t.Fatal(err)
			}
			sum := fmt.Sprintf("%x", md5.Sum([]byte(content)))
			writeFile(t, filepath.Join(info, "aold.md5sums"), sum+"  usr/bin/x\n")
			writeFile(t, filepath.Join(info, "aold.list"), "/usr/bin/x\n")
			writeFile(t, filepath.Join(info, "bnew.md5sums"), sum+"  bin/x\n")
			writeFile(t, filepath.Join(info, "bnew.list"), "/bin/x\n")
			versions := map[string]string{"aold": "1.0", "bnew": "2.0"}
			writeFile(t, filepath.Join(root, "var/lib/dpkg/status"),
				stanza(order[0], versions[order[0]])+stanza(order[1], versions[order[1]]))
			cfg := testConfig(t, "/bin")
			cfg.Root = root
			e := openEnricher(t, cfg)
			for _, p := range []string{"/bin/x", "/usr/bin/x"} {
				wantPackage(t, judge(t, e, p, "sha256", sha256Hex(content)), StatusPackage, "bnew", "")
			}
		})
	}
}

// TestStoreTakesDirOwner: the store written by root (the plugin's package
// index saves it before the plugin switches to its service user) belongs
// to its directory's owner, so that the service user can read it at its
// next refresh; in a root-owned directory it stays root's.
func TestStoreTakesDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const nobody = 65534
	for _, c := range []struct {
		name     string
		dirOwner int
	}{{"service user's dir", nobody}, {"root's dir", 0}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chown(dir, c.dirOwner, c.dirOwner); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, StoreFile)
			if err := saveStore(name, map[string]hashed{"/usr/bin/true": {}}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != c.dirOwner || int(st.Gid) != c.dirOwner {
				t.Fatalf("store owned by %d:%d, want %d:%d (its directory's)", st.Uid, st.Gid, c.dirOwner, c.dirOwner)
			}
			m, _, bad, err := loadStore(name)
			if err != nil || bad != 0 || len(m) != 1 {
				t.Fatalf("read back: %d entries, %d bad, err %v", len(m), bad, err)
			}
		})
	}
}
