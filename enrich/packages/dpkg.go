package packages

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// LineError is a line of a package database file that could not be read.
// The parsers report it and go on with the next line.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// maxLineErrors bounds the errors one file reports; the rest are counted.
const maxLineErrors = 20

// dpkgPackage is one stanza of /var/lib/dpkg/status.
type dpkgPackage struct {
	Name, Arch, Version string
	// HasFiles is false for packages whose files are gone (status
	// not-installed or config-files).
	HasFiles bool
	// Changing is true while dpkg replaces the package's files (status
	// half-installed).
	Changing bool
}

// parseDpkgStatus reads the stanzas of a dpkg status file (RFC 822 style
// paragraphs separated by blank lines; continuation lines start with a
// space or tab) and calls fn for each stanza with a Package field. Lines
// that are neither "Field: value" nor continuations, and stanzas without
// Package, are reported as *LineError (at most maxLineErrors; bad reports
// the total); the rest of the file is still read. Only a read error of r
// ends parsing early.
func parseDpkgStatus(name string, r io.Reader, fn func(dpkgPackage)) (errs []error, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var (
		cur   dpkgPackage
		start int // line of the stanza's first field, 0 when none
		line  int
	)
	report := func(l int, e error) {
		bad++
		if len(errs) < maxLineErrors {
			errs = append(errs, &LineError{File: name, Line: l, Err: e})
		}
	}
	flush := func() {
		switch {
		case start == 0:
		case cur.Name == "":
			report(start, errors.New("stanza without Package field"))
		default:
			fn(cur)
		}
		cur, start = dpkgPackage{}, 0
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			flush()
			continue
		}
		if b[0] == ' ' || b[0] == '\t' {
			if start == 0 {
				report(line, errors.New("continuation line outside a stanza"))
			}
			continue
		}
		k, v, ok := bytes.Cut(b, []byte(":"))
		if !ok || len(k) == 0 || bytes.ContainsAny(k, " \t") {
			report(line, fmt.Errorf("not a %q line: %.60q", "Field: value", b))
			continue
		}
		if start == 0 {
			start = line
			cur.HasFiles = true
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Package":
			cur.Name = string(v)
		case "Architecture":
			cur.Arch = string(v)
		case "Version":
			cur.Version = string(v)
		case "Status":
			// "want flag status": the files are on disk unless the
			// package is not installed or only its conffiles remain.
			f := strings.Fields(string(v))
			if len(f) == 3 && (f[2] == "not-installed" || f[2] == "config-files") {
				cur.HasFiles = false
			}
			cur.Changing = len(f) == 3 && f[2] == "half-installed"
		}
	}
	if err := sc.Err(); err != nil {
		return errs, bad, fmt.Errorf("%s: %w", name, err)
	}
	flush()
	return errs, bad, nil
}

// parseMD5Sums reads a dpkg md5sums file: one "<32 hex digits>  <path>"
// line per file, the path relative to the root (a leading "/" is
// accepted). fn gets the absolute path and the digest. Bad lines are
// reported as for parseDpkgStatus and skipped.
func parseMD5Sums(name string, r io.Reader, fn func(path string, md5 [16]byte)) (errs []error, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var sum [16]byte
		var e error
		switch {
		case len(b) < 35:
			e = fmt.Errorf("line too short for a digest and a path: %.60q", b)
		case b[32] != ' ' || (b[33] != ' ' && b[33] != '*'):
			e = fmt.Errorf("want 32 hex digits, two spaces and a path: %.60q", b)
		default:
			if _, err := hex.Decode(sum[:], b[:32]); err != nil {
				e = fmt.Errorf("digest %.32q: %w", b[:32], err)
			}
		}
		var p string
		if e == nil {
			if p = strings.TrimLeft(string(b[34:]), "/"); p == "" || strings.IndexByte(p, 0) >= 0 {
				e = fmt.Errorf("bad path %.60q", b[34:])
			}
		}
		if e != nil {
			bad++
			if len(errs) < maxLineErrors {
				errs = append(errs, &LineError{File: name, Line: line, Err: e})
			}
			continue
		}
		fn("/"+p, sum)
	}
	if err := sc.Err(); err != nil {
		return errs, bad, fmt.Errorf("%s: %w", name, err)
	}
	return errs, bad, nil
}

// diversion is one dpkg diversion: files listed at From by any package but
// Owner are installed at To.
type diversion struct{ To, Owner string }

// parseDiversions reads dpkg's diversions file: records of three lines,
// the diverted path, where it is diverted to, and the package that owns
// the diversion (":" for a local one). A last, incomplete record is
// reported as a *LineError.
func parseDiversions(name string, r io.Reader) (map[string]diversion, []error, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	m := map[string]diversion{}
	var rec []string
	line := 0
	var errs []error
	for sc.Scan() {
		line++
		rec = append(rec, sc.Text())
		if len(rec) < 3 {
			continue
		}
		if !strings.HasPrefix(rec[0], "/") || !strings.HasPrefix(rec[1], "/") || rec[2] == "" {
			errs = append(errs, &LineError{File: name, Line: line - 2, Err: fmt.Errorf("not a diversion: %.60q", rec)})
		} else {
			m[rec[0]] = diversion{To: rec[1], Owner: rec[2]}
		}
		rec = rec[:0]
	}
	if err := sc.Err(); err != nil {
		return m, errs, fmt.Errorf("%s: %w", name, err)
	}
	if len(rec) > 0 {
		errs = append(errs, &LineError{File: name, Line: line - len(rec) + 1, Err: errors.New("incomplete diversion record at the end")})
	}
	if len(errs) > maxLineErrors {
		errs = errs[:maxLineErrors]
	}
	return m, errs, nil
}

// readDpkg reads the dpkg database under root: the package list from
// var/lib/dpkg/status, with the stanzas dpkg journals in
// var/lib/dpkg/updates/ (files named by number, applied in order, until
// dpkg folds them into status) replacing the package's, and each package's files with their MD5 from
// var/lib/dpkg/info/<name>[:<arch>].md5sums. Packages without an md5sums
// file own no file here. A file another package diverted (dpkg-divert,
// var/lib/dpkg/diversions) is taken at the path it was diverted to. Line errors are returned in errs (the database is
// still used); err is set only when the status file cannot be read.
func readDpkg(root string) (db *database, errs []error, err error) {
	admin := filepath.Join(root, "var/lib/dpkg")
	statusPath := filepath.Join(admin, "status")
	f, err := os.Open(statusPath)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	db = &database{manager: "dpkg"}
	var pkgs []dpkgPackage
	at := map[string]int{} // name:arch -> index in pkgs
	add := func(p dpkgPackage) {
		k := p.Name + ":" + p.Arch
		if i, ok := at[k]; ok {
			pkgs[i] = p
			return
		}
		at[k] = len(pkgs)
		pkgs = append(pkgs, p)
	}
	errs, bad, err := parseDpkgStatus(statusPath, f, add)
	if err != nil {
		return nil, errs, err
	}
	db.badLines += bad
	updates, _ := os.ReadDir(filepath.Join(admin, "updates")) // sorted by name: dpkg pads the numbers
	for _, u := range updates {
		if strings.Trim(u.Name(), "0123456789") != "" {
			continue // tmp.i and the like
		}
		uf, err := os.Open(filepath.Join(admin, "updates", u.Name()))
		if err != nil {
			continue // folded into status meanwhile
		}
		es, bad, err := parseDpkgStatus(uf.Name(), uf, add)
		uf.Close()
		errs = append(errs, es...)
		db.badLines += bad
		if err != nil {
			errs = append(errs, err)
		}
	}
	var divs map[string]diversion
	if df, err := os.Open(filepath.Join(admin, "diversions")); err == nil {
		var es []error
		divs, es, err = parseDiversions(df.Name(), df)
		df.Close()
		errs = append(errs, es...)
		db.badLines += len(es)
		if err != nil {
			errs = append(errs, err)
		}
	}
	bases := make([]string, 0, len(pkgs)) // per db.pkgs: the info/ file name before the extension
	listed := map[int]string{}            // db.files index -> the path as listed, for diverted files
	for _, p := range pkgs {
		if !p.HasFiles {
			continue
		}
		pi := int32(len(db.pkgs))
		db.pkgs = append(db.pkgs, pkgInfo{Name: p.Name, Version: p.Version, Changing: p.Changing})
		bases = append(bases, "")
		var mf *os.File
		for _, n := range []string{p.Name + ":" + p.Arch, p.Name} {
			if mf, err = os.Open(filepath.Join(admin, "info", n+".md5sums")); err == nil {
				bases[pi] = n
				break
			}
		}
		if mf == nil {
			continue
		}
		es, bad, rerr := parseMD5Sums(mf.Name(), mf, func(path string, sum [16]byte) {
			if d, ok := divs[path]; ok && d.Owner != p.Name {
				listed[len(db.files)] = path
				path = d.To
			}
			var d [32]byte
			copy(d[:], sum[:])
			db.files = append(db.files, ownedFile{Path: path, Pkg: pi, Algo: digestMD5, Digest: d})
		})
		mf.Close()
		errs = append(errs, es...)
		db.badLines += bad
		if rerr != nil {
			errs = append(errs, rerr)
		}
	}
	db.files = keepListed(db.files, func(i int, f *ownedFile) string {
		if p, ok := listed[i]; ok {
			return p
		}
		return f.Path
	}, func(pkg int32) string { return filepath.Join(admin, "info", bases[pkg]+".list") })
	return db, errs, nil
}

// keepListed settles the paths that more than one package's md5sums list
// (a package took the file over with Replaces:, and the old owner's
// md5sums still name it): dpkg records the current owner in its
// info/<package>.list, so the listings of packages whose .list does not
// name the path are dropped, unless no candidate's .list names it (then
// all stay, the first wins as for any path). asListed gives a file's path
// as the package lists it (before a diversion), list a package's .list
// file. Only the candidates' .list files are read.
func keepListed(files []ownedFile, asListed func(int, *ownedFile) string, list func(pkg int32) string) []ownedFile {
	first := make(map[string]int, len(files))
	var dups map[string][]int // path -> the files listing it, when more than one
	for i := range files {
		p := files[i].Path
		j, ok := first[p]
		if !ok {
			first[p] = i
			continue
		}
		if dups == nil {
			dups = map[string][]int{}
		}
		if len(dups[p]) == 0 {
			dups[p] = []int{j}
		}
		dups[p] = append(dups[p], i)
	}
	if len(dups) == 0 {
		return files
	}
	want := map[int32]map[string]bool{} // package -> listed paths to look for in its .list
	for _, idx := range dups {
		for _, i := range idx {
			f := &files[i]
			if want[f.Pkg] == nil {
				want[f.Pkg] = map[string]bool{}
			}
			want[f.Pkg][asListed(i, f)] = false
		}
	}
	for pkg, paths := range want {
		lf, err := os.Open(list(pkg))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(lf)
		for sc.Scan() {
			if _, ok := paths[sc.Text()]; ok {
				paths[sc.Text()] = true
			}
		}
		lf.Close()
	}
	drop := map[int]bool{}
	for _, idx := range dups {
		owners := 0
		for _, i := range idx {
			if want[files[i].Pkg][asListed(i, &files[i])] {
				owners++
			}
		}
		if owners == 0 {
			continue
		}
		for _, i := range idx {
			if !want[files[i].Pkg][asListed(i, &files[i])] {
				drop[i] = true
			}
		}
	}
	out := files[:0]
	for i := range files {
		if !drop[i] {
			out = append(out, files[i])
		}
	}
	return out
}
