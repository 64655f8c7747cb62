package packages

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
