package packages

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// owner asks dpkg-query which package owns p and its version.
func owner(t testing.TB, p string) (name, version string) {
	t.Helper()
	// On merged /usr, dpkg lists /usr/bin/ls as /bin/ls.
	out, err := exec.Command("dpkg-query", "-S", p).Output()
	if err != nil {
		out, err = exec.Command("dpkg-query", "-S", strings.TrimPrefix(p, "/usr")).Output()
	}
	if err != nil {
		t.Fatalf("dpkg-query -S %s: %v", p, err)
	}
	name, _, _ = strings.Cut(strings.TrimSpace(string(out)), ":")
	out, err = exec.Command("dpkg-query", "-W", "-f=${Version}", name).Output()
	if err != nil {
		t.Fatalf("dpkg-query -W %s: %v", name, err)
	}
	return name, string(out)
}

// TestRealDpkgPackageAndRelocated indexes /usr/bin/ls and /usr/bin/env
// from this machine's dpkg database (which lists them as /bin/ls and
// /bin/env on merged /usr) and judges their real digests: package under
// either name, relocated for a copy under another name, modified for
// another digest on their path, unowned for a file no package has.
func TestRealDpkgPackageAndRelocated(t *testing.T) {
	needDpkg(t)
	e := openEnricher(t, testConfig(t, "/usr/bin/ls", "/usr/bin/env"))
	for _, p := range []string{"/usr/bin/ls", "/usr/bin/env"} {
		name, version := owner(t, p)
		s256, s1 := fileSHA(t, p)
		ev := judge(t, e, p, "sha256", s256)
		wantPackage(t, ev, StatusPackage, name, "")
		if ev.Package.Version != version || ev.Package.Manager != "dpkg" {
			t.Fatalf("%s: %+v, want version %s from dpkg", p, *ev.Package, version)
		}
		wantPackage(t, judge(t, e, p, "sha1", s1), StatusPackage, name, "")
		// The name dpkg lists (merged /usr alias) finds the same entry.
		wantPackage(t, judge(t, e, strings.TrimPrefix(p, "/usr"), "sha256", s256), StatusPackage, name, "")

		// A real copy under another name: relocated, with the original.
		cp := filepath.Join(t.TempDir(), "httpd")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp, data, 0o755); err != nil {
			t.Fatal(err)
		}
		c256, _ := fileSHA(t, cp)
		wantPackage(t, judge(t, e, cp, "sha256", c256), StatusRelocated, name, p)
	}
	// ls's digest on env's path: modified (env's file is unchanged on disk,
	// so the re-check confirms it).
	ls256, _ := fileSHA(t, "/usr/bin/ls")
	envName, _ := owner(t, "/usr/bin/env")
	wantPackage(t, judge(t, e, "/usr/bin/env", "sha256", ls256), StatusModified, envName, "")
	// A file no package has.
	own := filepath.Join(t.TempDir(), "mine")
	if err := os.WriteFile(own, []byte("#!/bin/sh\necho mine\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m256, _ := fileSHA(t, own)
	wantPackage(t, judge(t, e, own, "sha256", m256), StatusUnowned, "", "")
	// Algorithms the index does not hold are not judged.
	if ev := judge(t, e, "/usr/bin/ls", "md5", strings.Repeat("ab", 16)); ev.Package != nil {
		t.Fatalf("md5 judged: %+v", *ev.Package)
	}
}

// TestDigestPrefixIsNotAMatch: a digest that shares its first 8 bytes
// (or more) with a package file's, but not the rest, is not that file:
// modified on the file's path, unowned elsewhere (not package, not
// relocated), for SHA-256 and SHA-1 (found by review: the index compared
// 8-byte prefixes, so a crafted file passed for a package's).
func TestDigestPrefixIsNotAMatch(t *testing.T) {
	needDpkg(t)
	const p = "/usr/bin/ls"
	e := openEnricher(t, testConfig(t, p))
	name, _ := owner(t, p)
	s256, s1 := fileSHA(t, p)
	flip := func(h string) string { // the same first 62 or 38 digits, another last one
		last := "0"
		if h[len(h)-1] == '0' {
			last = "1"
		}
		return h[:len(h)-1] + last
	}
	other := filepath.Join(t.TempDir(), "evil")
	for _, c := range []struct{ algo, real string }{{"sha256", s256}, {"sha1", s1}} {
		for _, d := range []string{c.real[:16] + strings.Repeat("0", len(c.real)-16), flip(c.real)} {
			wantPackage(t, judge(t, e, p, c.algo, d), StatusModified, name, "")
			wantPackage(t, judge(t, e, other, c.algo, d), StatusUnowned, "", "")
		}
		wantPackage(t, judge(t, e, p, c.algo, c.real), StatusPackage, name, "")
	}
}

// TestRestartRehashesNothing builds an index, stops it and opens another
// on the same state directory: every file comes from the persisted
// hashes, none is hashed again, and the answers are the same.
func TestRestartRehashesNothing(t *testing.T) {
	needDpkg(t)
	cfg := testConfig(t, "/usr/bin/ls", "/usr/bin/env", "/usr/bin/cat", "/usr/lib/x86_64-linux-gnu/libc.so.6")
	// start runs an index to completion and returns its stats and what it
	// logged.
	start := func() (*Enricher, Stats, string) {
		var log testsupport.SyncBuffer
		e := New(cfg, slog.New(slog.NewTextHandler(&log, nil)), &metrics.Registry{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Index().Wait(ctx, nil); err != nil {
			e.Close()
			t.Fatal(err)
		}
		return e, e.Index().Stats(), log.String()
	}
	e, first, log := start()
	e.Close()
	if first.Hashed == 0 || first.Hashed != int64(first.Files) {
		t.Fatalf("first run: %+v, want every indexed file hashed", first)
	}
	// The line the IMA guest waits for, once, with the run's figures.
	want := fmt.Sprintf(`msg="packages: index complete" manager=dpkg files=%d hashed=%d reused=0 modified=0`, first.Files, first.Files)
	if strings.Count(log, "index complete") != 1 || !strings.Contains(log, want) {
		t.Errorf("first run logged %q, want one line with %q", log, want)
	}
	e2, st, log := start()
	t.Cleanup(e2.Close)
	if st.Hashed != 0 || st.Reused != int64(first.Files) || st.Files != first.Files {
		t.Fatalf("after restart: %+v, want 0 hashed and %d reused", st, first.Files)
	}
	want = fmt.Sprintf(`msg="packages: index complete" manager=dpkg files=%d hashed=0 reused=%d`, first.Files, first.Files)
	if !strings.Contains(log, want) {
		t.Errorf("after restart logged %q, want %q", log, want)
	}
	s256, _ := fileSHA(t, "/usr/bin/cat")
	name, _ := owner(t, "/usr/bin/cat")
	wantPackage(t, judge(t, e2, "/usr/bin/cat", "sha256", s256), StatusPackage, name, "")
}

// TestUnindexedWhileHashing paces hashing to a crawl so the index is
// caught incomplete: the pending path and every path not in the index say
// unindexed, never unowned.
func TestUnindexedWhileHashing(t *testing.T) {
	needDpkg(t)
	cfg := testConfig(t, "/usr/bin/ls")
	cfg.RateMB = 0.0001 // 100 bytes/s: ls takes hours
	e := New(cfg, testLog(t), &metrics.Registry{})
	t.Cleanup(e.Close)
	s256, _ := fileSHA(t, "/usr/bin/ls")
	other := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(other, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	o256, _ := fileSHA(t, other)
	name, _ := owner(t, "/usr/bin/ls")
	deadline := time.Now().Add(30 * time.Second)
	for e.Index().cur.Load() == nil {
		// Before the first snapshot (the database is being read).
		wantPackage(t, judge(t, e, "/usr/bin/ls", "sha256", s256), StatusUnindexed, "", "")
		if time.Now().After(deadline) {
			t.Fatal("no snapshot after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantPackage(t, judge(t, e, "/usr/bin/ls", "sha256", s256), StatusUnindexed, name, "")
	wantPackage(t, judge(t, e, other, "sha256", o256), StatusUnindexed, "", "")
	if st := e.Index().Stats(); st.Pending != 1 || st.Complete {
		t.Fatalf("stats %+v, want 1 pending", st)
	}
}

// TestScratchDebModified builds a small .deb holding a real binary with
// dpkg-deb, installs it into this system while an index runs, and checks
// that the index follows the install (package for its file), then modified
// after the file is changed outside dpkg (before and after the index
// refreshed); the package is purged afterwards.
func TestScratchDebModified(t *testing.T) {
	if testing.Short() {
		t.Skip("installs a package into the system (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	needDpkg(t)
	const pkg = "audisp-enrich-pkgtrust-scratch"
	dir := "/usr/lib/" + pkg
	bin := dir + "/tool"
	data := scratchBinary(t)
	deb := buildScratchDeb(t, pkg, bin, data)

	// The index follows the install: dpkg's status file changes, the
	// database is read again and the new file hashed.
	cfg := testConfig(t, dir)
	cfg.Refresh = time.Second
	e := openEnricher(t, cfg)
	if st := e.Index().Stats(); st.Files != 0 {
		t.Fatalf("before the install: %+v", st)
	}
	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() { run(t, "dpkg", "-P", pkg) })
	deadline := time.Now().Add(time.Minute)
	for st := e.Index().Stats(); st.Files != 1 || st.Pending != 0; st = e.Index().Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the index did not take the installed package: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// dpkg may touch its database once more after the last read (it
	// empties updates/): two ticks let the index read the final state, so
	// the re-check below does not see an install in progress.
	time.Sleep(2 * cfg.Refresh)
	s256, _ := fileSHA(t, bin)
	wantPackage(t, judge(t, e, bin, "sha256", s256), StatusPackage, pkg, "")

	// Change the file outside dpkg, as an intruder would.
	if err := os.WriteFile(bin, append(data, "trojan\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	m256, _ := fileSHA(t, bin)
	// The index still holds the old state (dpkg's database did not
	// change, so no tick refreshes it): the re-check sees the file changed
	// while the database did not, and asks for a refresh.
	wantPackage(t, judge(t, e, bin, "sha256", m256), StatusModified, pkg, "")
	deadline = time.Now().Add(time.Minute)
	for e.Index().Stats().Modified != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("refresh did not mark the file modified: %+v", e.Index().Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After the refresh the file on disk fails dpkg's MD5: modified, and
	// its digest is no package's content anywhere else.
	wantPackage(t, judge(t, e, bin, "sha256", m256), StatusModified, pkg, "")
	cp := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(cp, append(data, "trojan\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	wantPackage(t, judge(t, e, cp, "sha256", m256), StatusUnowned, "", "")
}

// scratchBinary returns a real binary of its own (true with a trailer,
// so it is not also a copy of true) that still runs.
func scratchBinary(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	return append(data, []byte("audisp-enrich scratch package\n")...)
}

// buildScratchDeb builds, with dpkg-deb, a package pkg holding data at bin.
func buildScratchDeb(t *testing.T, pkg, bin string, data []byte) string {
	t.Helper()
	tree := t.TempDir()
	for _, d := range []string{"DEBIAN", filepath.Dir(bin)} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tree, bin), data, 0o755); err != nil {
		t.Fatal(err)
	}
	control := "Package: " + pkg + "\nVersion: 1.0-1\nArchitecture: all\nMaintainer: audisp-enrich tests <root@localhost>\nDescription: scratch package of the audisp-enrich package index tests\n"
	if err := os.WriteFile(filepath.Join(tree, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("md5sum", strings.TrimPrefix(bin, "/"))
	cmd.Dir = tree
	md5sums, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "DEBIAN/md5sums"), md5sums, 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(t.TempDir(), pkg+".deb")
	run(t, "dpkg-deb", "--root-owner-group", "--build", tree, deb)
	return deb
}

// TestScratchDebDiverted diverts the path of a scratch package's file
// (dpkg-divert --local) before installing it, so dpkg installs it at the
// diverted path, and puts a local file of its own at the original path, as
// an administrator replacing a packaged file does: the package's file is
// package at its diverted path, and the local file is unowned, not
// modified.
func TestScratchDebDiverted(t *testing.T) {
	if testing.Short() {
		t.Skip("installs a package into the system (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	needDpkg(t)
	const pkg = "audisp-enrich-pkgtrust-diverted"
	dir := "/usr/lib/" + pkg
	bin, moved := dir+"/tool", dir+"/tool.distrib"
	data := scratchBinary(t)
	deb := buildScratchDeb(t, pkg, bin, append(data, "diverted\n"...))
	run(t, "dpkg-divert", "--local", "--divert", moved, "--no-rename", "--add", bin)
	t.Cleanup(func() { run(t, "dpkg-divert", "--local", "--no-rename", "--remove", bin) })
	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() { run(t, "dpkg", "-P", pkg) })
	local := append(data, "local version\n"...)
	if err := os.WriteFile(bin, local, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(bin) })

	e := openEnricher(t, testConfig(t, dir))
	m256, _ := fileSHA(t, moved)
	wantPackage(t, judge(t, e, moved, "sha256", m256), StatusPackage, pkg, "")
	l256, _ := fileSHA(t, bin)
	wantPackage(t, judge(t, e, bin, "sha256", l256), StatusUnowned, "", "")
	if st := e.Index().Stats(); st.Modified != 0 || st.Files != 1 {
		t.Fatalf("stats %+v, want 1 file, none modified", st)
	}
}

// run runs a command, retrying while another dpkg holds its lock.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	for try := 0; ; try++ {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err == nil {
			return
		}
		if try < 30 && bytes.Contains(out, []byte("lock")) {
			time.Sleep(2 * time.Second)
			continue
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
