package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// source returns ../shared/attack (the reduced MITRE data files), or skips
// the test when the shared checkout is absent. Files missing from a present
// checkout fail the test.
func source(t *testing.T) string {
	t.Helper()
	src := testsupport.SharedDir(t, "attack")
	for _, f := range []string{"SOURCE.md", "enterprise-techniques.tsv", "enterprise-tactics.tsv"} {
		if _, err := os.Stat(filepath.Join(src, f)); err != nil {
			t.Fatalf("ATT&CK data file missing from the shared checkout: %v", err)
		}
	}
	return src
}

// The committed catalog_gen.go is what the generator makes from the data.
func TestCommittedCatalogIsCurrent(t *testing.T) {
	src := source(t)
	got, err := Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../catalog_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("enrich/attack/catalog_gen.go is stale: run `go generate ./enrich/attack`")
	}
	for _, s := range []string{
		"DO NOT EDIT",
		`const Version = "18.1"`,
		"© 2025 The MITRE Corporation. This work is reproduced and distributed with the permission of The MITRE Corporation.",
		"hereby grants you a non-exclusive, royalty-free license to use ATT&CK®",
		"FOR A PARTICULAR PURPOSE.",
	} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("generated file lacks %q", s)
		}
	}
}

// copySource copies the data files into a temporary directory, applying
// edit to the file called name, and drops the hash lines from SOURCE.md so
// that edited files are not rejected for their hash.
func copySource(t *testing.T, name string, edit func(string) string) string {
	t.Helper()
	src := source(t)
	dir := t.TempDir()
	for _, f := range []string{"SOURCE.md", "enterprise-techniques.tsv", "enterprise-tactics.tsv"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f == "SOURCE.md" {
			s = reHash.ReplaceAllString(s, "")
		}
		if f == name {
			s = edit(s)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestGenerateRejectsBadData(t *testing.T) {
	const tech = "enterprise-techniques.tsv"
	cases := []struct {
		name, file string
		edit       func(string) string
		want       string
	}{
		{"unknown tactic", tech, func(s string) string {
			return strings.Replace(s, "T1001\tData Obfuscation\tcommand-and-control", "T1001\tData Obfuscation\tcommand-and-conquer", 1)
		}, tech + ":2: T1001: unknown tactic \"command-and-conquer\""},
		{"bad boolean", tech, func(s string) string {
			return strings.Replace(s, "Junk Data\tcommand-and-control\ttrue", "Junk Data\tcommand-and-control\tyes", 1)
		}, tech + ":3: boolean \"yes\""},
		{"missing field", tech, func(s string) string {
			return strings.Replace(s, "\tJunk Data\t", "\t", 1)
		}, tech + ":3: 10 fields, want 11"},
		{"revoked by nothing", tech, func(s string) string {
			return strings.Replace(s, "\tT1053.002\t", "\tT1053.999\t", 1)
		}, "T1053.001 is revoked by T1053.999, which is not listed"},
		{"duplicate", tech, func(s string) string {
			i := strings.Index(s, "\nT1001\t")
			j := strings.Index(s[i+1:], "\n")
			return s + s[i+1:i+1+j+1]
		}, "T1001 already listed on line 2"},
		{"bad tactic id", "enterprise-tactics.tsv", func(s string) string {
			return strings.Replace(s, "TA0043", "TX0043", 1)
		}, "enterprise-tactics.tsv:2: bad tactic id \"TX0043\""},
		{"no notice", "SOURCE.md", func(s string) string {
			return strings.Replace(s, "## License", "## Licence", 1)
		}, "no \"## License\" section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copySource(t, c.file, c.edit)
			_, err := Generate(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Generate: %v; want an error containing %q", err, c.want)
			}
		})
	}
}

// A data file that does not match the hash SOURCE.md lists is rejected.
func TestGenerateChecksHash(t *testing.T) {
	src := source(t)
	dir := t.TempDir()
	for _, f := range []string{"SOURCE.md", "enterprise-techniques.tsv", "enterprise-tactics.tsv"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "enterprise-tactics.tsv" {
			b = append(b, "\n"...)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Generate(dir)
	if err == nil || !strings.Contains(err.Error(), "enterprise-tactics.tsv: sha256") {
		t.Fatalf("Generate: %v; want a hash mismatch error", err)
	}
}
