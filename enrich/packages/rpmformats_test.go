package packages

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knqyf263/go-rpmdb/pkg/ndb"
)

// rpmQueryFormat makes rpm print, per package, a P line (name, version as
// the index writes it, file digest algorithm) and an F line per file
// (path, mode, digest).
const rpmQueryFormat = `P\t%{NAME}\t%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\t%{FILEDIGESTALGO}\n` +
	`[F\t%{FILENAMES}\t%{FILEMODES}\t%{FILEDIGESTS}\n]`

// TestRPMBerkeleyDBAndNDB reads real rpm databases of the two formats
// Debian's rpm cannot write (Berkeley DB: CentOS 5, CentOS 7, RHEL UBI 8 on
// s390x, big-endian; ndb: SUSE Linux Enterprise 15) through the index's
// database reader, and compares what it lists (packages with their
// versions; regular files with their digests) with what the real rpm
// says about the same file. The databases are the ones go-rpmdb ships as
// test data in its module (taken from those distributions' images). rpm
// reads Berkeley DB itself (its read-only bdb_ro backend); it has no ndb
// backend on Debian, so each ndb header blob is handed to rpm --importdb,
// which parses the headers itself, and the sqlite database it writes is
// queried.
func TestRPMBerkeleyDBAndNDB(t *testing.T) {
	if testing.Short() {
		t.Skip("reads about 35 MB of rpm databases twice (skipped with -short)")
	}
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm is not installed (Debian package rpm)")
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/knqyf263/go-rpmdb").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" {
		t.Fatalf("go list -m github.com/knqyf263/go-rpmdb: %v (%q): the module's test data is needed", err, out)
	}
	for _, tc := range []struct {
		name, file, at string
		algo           string // the file digest algorithm of every package with files
	}{
		{"bdb/centos5", "centos5-plain/Packages", "var/lib/rpm/Packages", "md5"},
		{"bdb/centos7", "centos7-plain/Packages", "var/lib/rpm/Packages", "sha256"},
		{"bdb/ubi8-s390x", "ubi8-s390x/Packages", "var/lib/rpm/Packages", "sha256"},
		{"ndb/sle15", "sle15-bci/Packages.db", "usr/lib/sysimage/rpm/Packages.db", "sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(mod, "pkg/testdata", tc.file)
			root := t.TempDir()
			db := filepath.Join(root, tc.at)
			if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(src, db); err != nil {
				t.Fatal(err)
			}
			got, errs, err := readDB(Config{Manager: "auto", Root: root})
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if len(errs) > 0 || got.badLines > 0 {
				t.Errorf("%s: %d bad entries: %v", src, got.badLines, errs)
			}
			var ref []byte
			if strings.HasPrefix(tc.name, "bdb/") {
				ref = rpmQuery(t, filepath.Dir(db), "--define", "_db_backend bdb_ro")
			} else {
				ref = rpmQuery(t, importNDB(t, db))
			}
			wantPkgs, wantFiles, algos := parseRPMQuery(t, ref)
			var gotPkgs, gotFiles []string
			for _, p := range got.pkgs {
				gotPkgs = append(gotPkgs, p.Name+" "+p.Version)
			}
			n := map[digestAlgo]int{}
			for _, f := range got.files {
				p := got.pkgs[f.Pkg]
				d := f.Digest[:]
				if f.Algo == digestMD5 {
					d = d[:16]
				}
				n[f.Algo]++
				gotFiles = append(gotFiles, p.Name+" "+p.Version+" "+f.Path+" "+hex.EncodeToString(d))
			}
			compareSorted(t, "packages", gotPkgs, wantPkgs)
			compareSorted(t, "regular files with digests", gotFiles, wantFiles)
			if len(algos) != 1 || algos[tc.algo] == 0 {
				t.Errorf("rpm says the file digest algorithms are %v, want all %s", algos, tc.algo)
			}
			t.Logf("%s: %d packages, %d regular files (%d MD5, %d SHA-256) as rpm lists them",
				tc.file, len(gotPkgs), len(gotFiles), n[digestMD5], n[digestSHA256])
		})
	}
}

// rpmQuery runs rpm -qa with rpmQueryFormat on the database in dbpath.
func rpmQuery(t *testing.T, dbpath string, args ...string) []byte {
	t.Helper()
	args = append([]string{"--dbpath", dbpath}, args...)
	cmd := exec.Command("rpm", append(args, "-qa", "--qf", rpmQueryFormat)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// importNDB hands every header blob of the ndb database at path to rpm
// --importdb (the stream rpmdb --exportdb writes: each header after the
// 8-byte header magic) and returns the dbpath of the sqlite database rpm
// built from them.
func importNDB(t *testing.T, path string) string {
	t.Helper()
	db, err := ndb.Open(path)
	if err != nil || db == nil {
		t.Fatalf("%s: not an ndb database: %v", path, err)
	}
	defer db.Close()
	var stream bytes.Buffer
	for e := range db.Read() {
		if e.Err != nil {
			t.Fatalf("%s: %v", path, e.Err)
		}
		stream.Write([]byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0})
		stream.Write(e.Value)
	}
	dbpath := t.TempDir()
	cmd := exec.Command("rpmdb", "--dbpath", dbpath, "--importdb")
	cmd.Stdin = &stream
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmdb --importdb: %v\n%s", err, out)
	}
	return dbpath
}

// parseRPMQuery reads rpmQueryFormat output: "name version" per package,
// "name version path digest" per regular file with a digest, and how many
// packages with such files use each file digest algorithm.
func parseRPMQuery(t *testing.T, out []byte) (pkgs, files []string, algos map[string]int) {
	t.Helper()
	algos = map[string]int{}
	var cur, algo string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch {
		case len(f) == 4 && f[0] == "P":
			cur = f[1] + " " + f[2]
			pkgs = append(pkgs, cur)
			switch algo = f[3]; algo {
			case "(none)", "1": // no tag: MD5, as rpm itself assumes
				algo = "md5"
			case "8":
				algo = "sha256"
			}
		case len(f) == 4 && f[0] == "F":
			mode, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("rpm printed a file mode %q", f[2])
			}
			const sIFMT, sIFREG = 0o170000, 0o100000
			if mode&sIFMT == sIFREG && f[3] != "" {
				files = append(files, cur+" "+f[1]+" "+f[3])
				if algo != "" {
					algos[algo]++ // once per package with files
					algo = ""
				}
			}
		default:
			t.Fatalf("unexpected rpm output line %q", sc.Text())
		}
	}
	return pkgs, files, algos
}

// compareSorted fails unless got and want hold the same lines, naming the
// first few that differ.
func compareSorted(t *testing.T, what string, got, want []string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		if len(want) == 0 {
			t.Errorf("rpm lists no %s", what)
		}
		return
	}
	var miss, extra []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok && len(miss) < 5 {
			miss = append(miss, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok && len(extra) < 5 {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: the index read %d, rpm lists %d; missing (first 5) %q; not in rpm's list (first 5) %q",
		what, len(got), len(want), miss, extra)
}
