package sigma

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRulePaths: a configured path that is a link to a rule directory
// loads its rules (under the link's name); overlapping paths load each
// file once, with no duplicate reported; a Kubernetes ConfigMap mount
// (name -> ..data/name, ..data -> ..<timestamp>) loads each rule once
// and picks up an update (..data relinked); a directory without rule
// files loads and is warned about.
func TestRulePaths(t *testing.T) {
	r1 := rule("p1", "process_creation", "    sel:\n        Image|endswith: /curl\n    condition: sel\n")
	r2 := rule("p2", "auditd", "    sel:\n        a0: wget\n    condition: sel\n")
	check := func(t *testing.T, paths []string, want []string, wantFiles ...string) *Set {
		t.Helper()
		s, err := Load(paths)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleIDs(s); !slices.Equal(got, want) {
			t.Errorf("rules %v, want %v", got, want)
		}
		if len(s.Problems) > 0 {
			t.Errorf("problems %v", s.Problems)
		}
		if len(wantFiles) > 0 && !slices.Equal(s.order, wantFiles) {
			t.Errorf("files %v, want %v", s.order, wantFiles)
		}
		return s
	}
	t.Run("linked directory", func(t *testing.T) {
		dir := ruleDir(t, r1, r2)
		link := filepath.Join(t.TempDir(), "rules")
		mustDo(t, os.Symlink(dir, link))
		check(t, []string{link}, []string{"p1", "p2"}, filepath.Join(link, "ra.yml"), filepath.Join(link, "rb.yml"))
	})
	t.Run("overlapping paths", func(t *testing.T) {
		dir := t.TempDir()
		sub := filepath.Join(dir, "sub")
		mustDo(t, os.Mkdir(sub, 0o755))
		mustDo(t, os.WriteFile(filepath.Join(sub, "a.yml"), []byte(r1), 0o644))
		mustDo(t, os.WriteFile(filepath.Join(dir, "b.yml"), []byte(r2), 0o644))
		check(t, []string{sub, dir, filepath.Join(dir, "b.yml")}, []string{"p1", "p2"})
	})
	t.Run("configmap", func(t *testing.T) {
		cm := t.TempDir()
		version := func(name, text string) {
			mustDo(t, os.Mkdir(filepath.Join(cm, name), 0o755))
			mustDo(t, os.WriteFile(filepath.Join(cm, name, "a.yml"), []byte(text), 0o644))
			tmp := filepath.Join(cm, "..data_tmp")
			mustDo(t, os.Symlink(name, tmp))
			mustDo(t, os.Rename(tmp, filepath.Join(cm, "..data")))
		}
		version("..2026_01_01_00_00_00.1", r1)
		mustDo(t, os.Symlink("..data/a.yml", filepath.Join(cm, "a.yml")))
		s := check(t, []string{cm}, []string{"p1"}, filepath.Join(cm, "a.yml"))
		version("..2026_01_02_00_00_00.2", strings.ReplaceAll(r1, "p1", "p1b"))
		if stamp([]string{cm}) == s.stamp {
			t.Error("the update left the stamp unchanged")
		}
		s2, err := loadWith([]string{cm}, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleIDs(s2); !slices.Equal(got, []string{"p1b"}) || len(s2.Problems) > 0 {
			t.Errorf("after the update: rules %v, problems %v", got, s2.Problems)
		}
	})
	t.Run("no rule files", func(t *testing.T) {
		dir, empty := ruleDir(t, r1), t.TempDir()
		mustDo(t, os.WriteFile(filepath.Join(empty, "README"), []byte("x"), 0o644))
		s := check(t, []string{dir, empty}, []string{"p1"})
		if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], empty+": no rule file") {
			t.Errorf("warnings %q", s.Warnings)
		}
	})
}
