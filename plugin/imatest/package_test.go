package imatest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The guest's one Debian package, whose files the package-trust scenarios
// (9-11) execute, copy and change.
const (
	guestPkgName    = "imatest-tools"
	guestPkgVersion = "1.0-1"
	guestPkgNC      = "/usr/bin/imatest-nc" // s9 as installed, s10 as a copy
	guestPkgED      = "/usr/bin/imatest-ed" // s11 after /init rewrote it
	guestRelocated  = "/tmp/imatest-httpd"  // s10: where /init copies imatest-nc
)

// addGuestPackage builds a real .deb of guestPkgName holding g.pkgNC and
// g.pkgED with dpkg-deb, installs it with the host's dpkg --root into an
// empty root under dir, and adds what dpkg wrote there (the two binaries,
// var/lib/dpkg/status and info/*.md5sums, *.list) to t. The guest's
// packages enricher reads that database as any dpkg system's.
func addGuestPackage(t fsTree, dir string, g *guestFiles) error {
	src := filepath.Join(dir, "deb")
	root := filepath.Join(dir, "dpkg-root")
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\n"+
		"Maintainer: audisp-enrich IMA test <root@localhost>\n"+
		"Description: two tiny static programs for the IMA test's package-trust scenarios\n",
		guestPkgName, guestPkgVersion)
	for p, b := range map[string][]byte{"DEBIAN/control": []byte(control),
		guestPkgNC[1:]: g.pkgNC, guestPkgED[1:]: g.pkgED} {
		mode := os.FileMode(0o755)
		if strings.HasPrefix(p, "DEBIAN/") {
			mode = 0o644
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, p), b, mode); err != nil {
			return err
		}
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		return err
	}
	deb := filepath.Join(dir, guestPkgName+".deb")
	for _, args := range [][]string{
		{"dpkg-deb", "--root-owner-group", "-Zgzip", "--build", src, deb},
		{"dpkg", "--root=" + root, "--log=/dev/null", "--install", deb},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return t.copyFile(rel, p, uint32(fi.Mode().Perm()))
	})
}
