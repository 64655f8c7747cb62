package sigma

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// sharedRules returns the SigmaHQ Linux rule directories under ../shared,
// or skips the test when they are absent.
func sharedRules(t testing.TB) []string {
	t.Helper()
	base := testsupport.SharedDir(t, "sigma")
	dirs := []string{filepath.Join(base, "rules", "linux"), filepath.Join(base, "rules-threat-hunting", "linux")}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Skipf("SigmaHQ rules not found (%v): they live in ../shared/sigma beside the repository", err)
		}
	}
	return dirs
}

// TestSharedRulesLoad: every SigmaHQ Linux rule either loads or is
// reported with a file, a line and a reason; none of the rules of the
// supported logsources is malformed.
func TestSharedRulesLoad(t *testing.T) {
	dirs := sharedRules(t)
	s, err := Load(dirs)
	if err != nil {
		t.Fatal(err)
	}
	files, _, _ := ruleFiles(dirs)
	total := 0
	for _, n := range s.Loaded {
		total += n
	}
	for _, n := range s.Skipped {
		total += n
	}
	if total != len(files) {
		t.Errorf("%d rules loaded or skipped, %d files", total, len(files))
	}
	for _, p := range s.Problems {
		if p.File == "" || p.Line == 0 || p.Reason == "" {
			t.Errorf("problem without file, line or reason: %+v", p)
		}
		if !p.Unsupported {
			t.Errorf("malformed: %s", p)
		}
		t.Log(p)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range s.Loaded {
			if !yield(k) {
				return
			}
		}
		for k := range s.Skipped {
			if _, ok := s.Loaded[k]; !ok && !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		t.Logf("%-40s loaded %3d skipped %3d", k, s.Loaded[k], s.Skipped[k])
	}
	if s.Loaded["auditd"] == 0 || s.Loaded["process_creation"] == 0 {
		t.Errorf("loaded %v", s.Loaded)
	}
}
