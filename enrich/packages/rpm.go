package packages

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver go-rpmdb opens rpmdb.sqlite with
)

// rpmDBFiles are the rpm database files tried under the root, in order:
// the sqlite database of rpm >= 4.16 (Fedora, RHEL 9; in /usr/lib/sysimage
// on Fedora 36 and later and openSUSE), ndb (openSUSE) and Berkeley DB
// (RHEL 8 and older).
var rpmDBFiles = []string{
	"var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite",
	"var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages.db",
	"var/lib/rpm/Packages",
}

// readRPM reads the rpm database under root (see rpmDBFiles): every
// installed package with its regular files and their digests (SHA-256 on
// current distributions, MD5 on old ones; files with another algorithm are
// skipped and counted as bad lines).
func readRPM(root string) (*database, []error, error) {
	var path string
	for _, f := range rpmDBFiles {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			path = filepath.Join(root, f)
			break
		}
	}
	if path == "" {
		return nil, nil, fmt.Errorf("no rpm database under %s (looked for %v)", root, rpmDBFiles)
	}
	db, err := rpmdb.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	defer db.Close()
	pkgs, err := db.ListPackages()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	out := &database{manager: "rpm"}
	var errs []error
	for _, p := range pkgs {
		var algo digestAlgo
		switch p.DigestAlgorithm {
		case rpmdb.PGPHASHALGO_SHA256:
			algo = digestSHA256
		case rpmdb.PGPHASHALGO_MD5, 0: // 0: old packages without the tag use MD5
			algo = digestMD5
		default:
			out.badLines++
			errs = append(errs, fmt.Errorf("%s: package %s: file digest algorithm %v is not supported", path, p.Name, p.DigestAlgorithm))
			continue
		}
		files, err := p.InstalledFiles()
		if err != nil {
			out.badLines++
			errs = append(errs, fmt.Errorf("%s: package %s: %w", path, p.Name, err))
			continue
		}
		version := p.Version + "-" + p.Release
		if p.Epoch != nil {
			version = strconv.Itoa(*p.Epoch) + ":" + version
		}
		pi := int32(len(out.pkgs))
		out.pkgs = append(out.pkgs, pkgInfo{Name: p.Name, Version: version})
		for _, f := range files {
			const sIFMT, sIFREG = 0o170000, 0o100000
			if f.Mode&sIFMT != sIFREG || f.Digest == "" {
				continue
			}
			of := ownedFile{Path: f.Path, Pkg: pi, Algo: algo}
			n, err := hex.Decode(of.Digest[:], []byte(f.Digest))
			if err != nil || algo == digestSHA256 && n != 32 || algo == digestMD5 && n != 16 {
				out.badLines++
				errs = append(errs, fmt.Errorf("%s: package %s: %s: bad digest %q", path, p.Name, f.Path, f.Digest))
				continue
			}
			out.files = append(out.files, of)
		}
	}
	if len(errs) > maxLineErrors {
		errs = append(errs[:maxLineErrors], errors.New("more errors not shown"))
	}
	return out, errs, nil
}
