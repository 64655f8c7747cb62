package sigma

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

func ruleIDs(s *Set) []string {
	var ids []string
	for _, r := range s.Rules() {
		ids = append(ids, r.ID)
	}
	return ids
}

// titles lists s's rules as id=title.
func titles(s *Set) []string {
	var out []string
	for _, r := range s.Rules() {
		out = append(out, r.ID+"="+r.Title)
	}
	return out
}

// writeRules writes text to the rule file f.
func writeRules(t *testing.T, f, text string) {
	t.Helper()
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHotReload: a rule file added to a watched directory is loaded; a
// file that turns malformed keeps the rules it had (and is reported); a
// removed file's rules go; Reload (SIGHUP) does the same at once.
func TestHotReload(t *testing.T) {
	dir := ruleDir(t, rule("r1", "auditd", "    sel:\n        a0: curl\n    condition: sel\n"))
	e, err := New(Config{Rules: []string{dir}, ReloadInterval: 20 * time.Millisecond}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	waitIDs := func(want ...string) {
		t.Helper()
		if !testsupport.Until(5*time.Second, func() bool { return slices.Equal(ruleIDs(e.Set()), want) }) {
			t.Fatalf("rules %v, want %v", ruleIDs(e.Set()), want)
		}
	}
	waitIDs("r1")
	second := filepath.Join(dir, "second.yml")
	if err := os.WriteFile(second, []byte(rule("r2", "process_creation", "    sel:\n        Image|endswith: /curl\n    condition: sel\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitIDs("r1", "r2")
	// Broken: r2's file keeps r2, and the problem is reported.
	if err := os.WriteFile(second, []byte("title: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !testsupport.Until(5*time.Second, func() bool { return len(e.Set().Problems) == 1 }) {
		t.Fatalf("problems %v", e.Set().Problems)
	}
	if got := ruleIDs(e.Set()); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("after breaking second.yml: %v, want r1 and r2 kept", got)
	}
	if p := e.Set().Problems[0]; p.File != second || p.Line != 1 {
		t.Errorf("problem %+v", p)
	}
	if err := os.Remove(second); err != nil {
		t.Fatal(err)
	}
	waitIDs("r1")
	// Reload without the poller, as SIGHUP does.
	e.Close()
	if err := os.WriteFile(second, []byte(rule("r3", "auditd", "    sel:\n        a0: wget\n    condition: sel\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ruleIDs(e.Set()); !slices.Equal(got, []string{"r1", "r3"}) {
		t.Errorf("after Reload: %v", got)
	}
	// A rules path that disappeared keeps the whole previous set.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err == nil {
		t.Error("Reload of a missing directory succeeded")
	}
	if got := ruleIDs(e.Set()); !slices.Equal(got, []string{"r1", "r3"}) {
		t.Errorf("after a failed Reload: %v", got)
	}
}

// TestEnrichDuringReload: events are enriched while the rules are
// reloaded (run with -race); each event sees one whole rule set.
func TestEnrichDuringReload(t *testing.T) {
	e := newTestEnricher(t, rule("c1", "auditd", "    sel:\n        a0: curl\n    condition: sel\n"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			if err := e.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
			if got := matched(t, e, eventOf(t, execCurl)); !slices.Equal(got, []string{"c1"}) {
				t.Fatalf("matched %v", got)
			}
		}
	}
}

// TestBrokenFileEdits: an empty YAML document (a trailing "---", a
// document of comments) is no rule and no problem; while one document of
// a file stays broken, edits of its other rules are applied at each
// reload, and the broken document's rule keeps its previous version.
// Before, the empty document broke the file, and a broken file kept all
// its previous rules, so no edit showed until a restart.
func TestBrokenFileEdits(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "r.yml")
	write := func(text string) { writeRules(t, f, text) }
	a := func(title string) string {
		return strings.Replace(rule("a", "process_creation", "    sel:\n        Image|endswith: /worker\n    condition: sel\n"), "Test a", title, 1)
	}
	b := rule("b", "auditd", "    sel:\n        a0: wget\n    condition: sel\n")
	write(a("T1") + "---\n# nothing here\n---\n")
	s, err := Load([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := titles(s); !slices.Equal(got, []string{"a=T1"}) || len(s.Problems) > 0 {
		t.Fatalf("rules %v, problems %v", got, s.Problems)
	}
	write(a("T2") + "---\n")
	if s, err = loadWith([]string{dir}, s); err != nil {
		t.Fatal(err)
	}
	if got := titles(s); !slices.Equal(got, []string{"a=T2"}) {
		t.Fatalf("after an edit: rules %v, problems %v", got, s.Problems)
	}
	write(a("T2") + "---\n" + b)
	if s, err = loadWith([]string{dir}, s); err != nil {
		t.Fatal(err)
	}
	brokenB := strings.Replace(b, "condition: sel", "condition: sel and", 1)
	for _, title := range []string{"T3", "T4"} {
		write(a(title) + "---\n" + brokenB)
		if s, err = loadWith([]string{dir}, s); err != nil {
			t.Fatal(err)
		}
		if got := titles(s); !slices.Equal(got, []string{"a=" + title, "b=Test b"}) || len(s.Problems) != 1 {
			t.Fatalf("with b broken, after editing a: rules %v, problems %v", got, s.Problems)
		}
	}
}

// TestRuleWithoutID: a rule without id (optional in the specification)
// loads under an id derived from its file name and title, which a reload
// keeps and which differs for the same title in another file; it matches
// and its techniques carry that id.
func TestRuleWithoutID(t *testing.T) {
	noID := strings.Replace(rule("x", "process_creation", "    sel:\n        Image|endswith: /curl\n    condition: sel\n"), "id: x\n", "", 1)
	dir := ruleDir(t, noID, noID)
	e, err := New(Config{Rules: []string{dir}}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := ruleIDs(e.Set())
	if len(ids) != 2 || len(e.Set().Problems) > 0 || ids[0] == ids[1] || !strings.HasPrefix(ids[0], "noid-") || len(ids[0]) != len("noid-")+16 {
		t.Fatalf("ids %v, problems %v", ids, e.Set().Problems)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if again := ruleIDs(e.Set()); !slices.Equal(again, ids) {
		t.Errorf("ids after a reload %v, before %v", again, ids)
	}
	ev := eventOf(t, execCurl)
	if got := matched(t, e, ev); !slices.Equal(got, ids) {
		t.Errorf("matched %v, want %v", got, ids)
	}
	if len(ev.Techniques) == 0 || ev.Techniques[0].Source != "sigma:"+ids[0] {
		t.Errorf("techniques %+v", ev.Techniques)
	}
}

// TestBrokenFileEditsNoID: while one document of a file stays broken, a
// rule without id whose title is edited (so its derived id changes), or
// that is given an id, replaces its previous version, which the document's
// position identifies; before, both versions ran until the file was fixed.
func TestBrokenFileEditsNoID(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "r.yml")
	write := func(text string) { writeRules(t, f, text) }
	worker := func(title string) string {
		return strings.Replace(strings.Replace(rule("w", "process_creation", "    sel:\n        Image|endswith: /worker\n    condition: sel\n"),
			"id: w\n", "", 1), "Test w", title, 1)
	}
	b := rule("b", "auditd", "    sel:\n        a0: wget\n    condition: sel\n")
	brokenB := strings.Replace(b, "condition: sel", "condition: sel and", 1)
	write(worker("Worker v1") + "---\n# comments only\n---\n" + b)
	s, err := Load([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ text, want string }{
		{worker("Worker v2") + "---\n" + brokenB, derivedID(f, "Worker v2") + "=Worker v2"},
		{worker("Worker v3") + "---\n" + brokenB, derivedID(f, "Worker v3") + "=Worker v3"},
		{"id: w\n" + worker("Worker v4") + "---\n" + brokenB, "w=Worker v4"},
	} {
		write(step.text)
		if s, err = loadWith([]string{dir}, s); err != nil {
			t.Fatal(err)
		}
		if got, want := titles(s), []string{step.want, "b=Test b"}; !slices.Equal(got, want) || len(s.Problems) != 1 {
			t.Fatalf("rules %v, want %v; problems %v", got, want, s.Problems)
		}
	}
}
