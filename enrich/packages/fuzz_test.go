package packages

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// checkLineErrors checks that every error is a LineError naming file and
// a line of data, and that bad counts at least the reported ones.
func checkLineErrors(t *testing.T, file string, data []byte, errs []error, bad int) {
	t.Helper()
	lines := bytes.Count(data, []byte("\n")) + 1
	if bad < len(errs) || len(errs) > maxLineErrors {
		t.Fatalf("%d errors reported, %d counted", len(errs), bad)
	}
	for _, err := range errs {
		var le *LineError
		if !errors.As(err, &le) {
			t.Fatalf("error %v (%T) is not a LineError", err, err)
		}
		if le.File != file || le.Line < 1 || le.Line > lines || !strings.HasPrefix(err.Error(), file+":") {
			t.Fatalf("error %q names a line outside the %d-line input", err, lines)
		}
	}
}

func FuzzDpkgStatus(f *testing.F) {
	f.Add([]byte("Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9.1-1\nDescription: GNU core utilities\n more text\n .\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n"))
	f.Add([]byte("Version: 1\n\n continuation\nno colon here\nPackage: x\n"))
	f.Add([]byte("Package: a\r\nStatus: install ok installed\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var pkgs []dpkgPackage
		errs, bad, err := parseDpkgStatus("status", bytes.NewReader(data), func(p dpkgPackage) { pkgs = append(pkgs, p) })
		if err != nil {
			return // a line over 1 MiB
		}
		checkLineErrors(t, "status", data, errs, bad)
		for _, p := range pkgs {
			if p.Name == "" || strings.ContainsAny(p.Name, "\n") {
				t.Fatalf("package %+v", p)
			}
		}
	})
}

func FuzzMD5Sums(f *testing.F) {
	f.Add([]byte("7a4179e324c784b99e98fedee05260f7  bin/cat\ndb0817401cfd9c5a818ae919d10ba7c5  usr/share/doc/a b/c\n"))
	f.Add([]byte("7A4179E324C784B99E98FEDEE05260F7 */bin/cat\nzz4179e324c784b99e98fedee05260f7  x\nshort\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		errs, bad, err := parseMD5Sums("x.md5sums", bytes.NewReader(data), func(p string, _ [16]byte) {
			n++
			if len(p) < 2 || p[0] != '/' || p[1] == '/' || strings.ContainsAny(p, "\x00\n") {
				t.Fatalf("path %q", p)
			}
		})
		if err != nil {
			return
		}
		checkLineErrors(t, "x.md5sums", data, errs, bad)
		if n+bad > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d files and %d bad lines from %d lines", n, bad, bytes.Count(data, []byte("\n"))+1)
		}
	})
}

// FuzzStore parses persisted hashes; what parses is written again and
// parses to the same.
func FuzzStore(f *testing.F) {
	h := hashed{Key: fileKey{Size: 35694, MtimeNs: 1700000000123456789, Ino: 1234}}
	h.MD5[0], h.SHA1[1], h.SHA256[2] = 1, 2, 3
	f.Add(append([]byte(storeHeader+"\n"), appendStoreLine(nil, "/usr/bin/a b\t\"c\"", &h)...))
	f.Add([]byte(storeHeader + "\n\"/x\" 1 2 3 00 00 00\n\"rel\" 1 2 3\nnot quoted\n"))
	f.Add([]byte("# another header\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, errs, bad, err := parseStore("packages.idx", bytes.NewReader(data))
		if err != nil {
			return
		}
		checkLineErrors(t, "packages.idx", data, errs, bad)
		var out []byte
		out = append(out, storeHeader+"\n"...)
		for p, h := range m {
			out = appendStoreLine(out, p, &h)
		}
		m2, errs, _, err := parseStore("again", bytes.NewReader(out))
		if err != nil || len(errs) > 0 || len(m2) != len(m) {
			t.Fatalf("re-parse: %v %v, %d of %d entries", err, errs, len(m2), len(m))
		}
		for p, h := range m {
			if m2[p] != h {
				t.Fatalf("%q: %+v became %+v", p, h, m2[p])
			}
		}
	})
}

func FuzzDiversions(f *testing.F) {
	f.Add([]byte("/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\n/usr/share/dict/words\n/usr/share/dict/words.pre\n:\n"))
	f.Add([]byte("relative\n/x\npkg\n/a\n/b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, errs, err := parseDiversions("diversions", bytes.NewReader(data))
		if err != nil {
			return
		}
		checkLineErrors(t, "diversions", data, errs, len(errs))
		for from, d := range m {
			if from == "" || from[0] != '/' || d.To == "" || d.To[0] != '/' || d.Owner == "" {
				t.Fatalf("diversion %q -> %+v", from, d)
			}
		}
	})
}
