package hunt

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRulesFile(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UseDefaults = false
	cfg.RulesFile = "testdata/good.toml"
	e := mustEnricher(t, cfg)
	if want := []string{"exec_from_uploads", "archive_account_in_tmp", "cron_tamper"}; !slices.Equal(e.Rules(), want) {
		t.Fatalf("rules = %q, want %q", e.Rules(), want)
	}
	for _, c := range []struct {
		ev   ev
		want []string
	}{
		{ev{exe: "/var/www/shop/uploads/cat.jpg.sh", uid: 33, user: "www-data"}, []string{"exec_from_uploads"}},
		{ev{exe: "/tmp/backup.sh", uid: 850, user: "bacula"}, []string{"archive_account_in_tmp"}},
		{ev{exe: "/tmp/backup.sh", uid: 1000, user: "alice"}, nil},
		{ev{syscall: "2", exe: "/usr/bin/vi", key: "T1053.003-Scheduled Task-Job-Cron", paths: []string{"/etc/cron.daily/", "/etc/cron.daily/x"}}, []string{"cron_tamper"}},
		{ev{syscall: "2", exe: "/usr/bin/vi", key: "cron", paths: []string{"/etc/passwd"}}, nil},
	} {
		if got := hits(t, e, c.ev.build()); !slices.Equal(got, c.want) {
			t.Errorf("%+v: hits %q, want %q", c.ev, got, c.want)
		}
	}
	// The user file replaces a built-in rule of the same name in place.
	dir := t.TempDir()
	f := filepath.Join(dir, "r.toml")
	if err := os.WriteFile(f, []byte("[[rule]]\nname = \"blocklisted_hash\"\nseverity = \"low\"\nblocklisted = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	cfg.RulesFile = f
	e = mustEnricher(t, cfg)
	event := ev{syscall: "ima", exe: "/usr/bin/x", blocked: true}.build()
	hits(t, e, event)
	builtin, err := ParseRules(DefaultRulesName, DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	if len(event.Hunt) != 1 || event.Hunt[0].Severity != 1 || len(e.Rules()) != len(builtin) {
		t.Errorf("override: hunt %+v, %d rules, want the %d built-in ones", event.Hunt, len(e.Rules()), len(builtin))
	}
	cfg.RulesFile = filepath.Join(dir, "missing.toml")
	if _, err := newEnricher(cfg, testUsers, nil); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadErrors checks that every error names the file, line and rule.
func TestLoadErrors(t *testing.T) {
	files := []struct{ file, want string }{
		{"unknown_key.toml", `testdata/unknown_key.toml:10: rule "b": unknown key "rule.exe_regexp"`},
		{"bad_regex.toml", `testdata/bad_regex.toml:6: rule "b": exe_regex: "(": error parsing regexp: missing closing ): ` + "`(`"},
		{"bad_type.toml", `testdata/bad_type.toml:4: rule "a": exe: incompatible types: TOML value has type string; destination has type slice`},
		{"syntax.toml", `testdata/syntax.toml:3: rule #1: expected value but found "low" instead`},
		{"top_level.toml", `testdata/top_level.toml:1: unknown key "version" (a rules file holds [[rule]] tables only)`},
	}
	for _, c := range files {
		data, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseRules("testdata/"+c.file, data)
		var re *RuleError
		if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: error %v, want prefix %q", c.file, err, c.want)
		}
		cfg := DefaultConfig()
		cfg.RulesFile = "testdata/" + c.file
		if _, err := New(cfg, nil); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("New with %s: %v", c.file, err)
		}
	}

	// Rule-level checks, each in a file whose second rule is the bad one.
	const head = "[[rule]]\nname = \"ok\"\nseverity = \"low\"\nexec = true\n\n[[rule]]\nname = \"bad\"\n"
	for _, c := range []struct{ body, want string }{
		{`severity = "severe"` + "\nexec = true", `severity "severe": want low, medium, high or critical`},
		{"exec = true", `severity "": want`},
		{`severity = "low"`, "no condition"},
		{`severity = "low"` + "\nexe = ['/tmp/[']", `exe: "/tmp/[": syntax error in pattern`},
		{`severity = "low"` + "\nexe_name = ['bin/sh']", `exe_name: "bin/sh": a name cannot contain '/'`},
		{`severity = "low"` + "\nparent_name = ['']", "parent_name: empty pattern"},
		{`severity = "low"` + "\nfile_regex = ['']", "file_regex: empty regex"},
		{`severity = "low"` + "\nancestor_name = ['sbin/nginx']", `ancestor_name: "sbin/nginx": a name cannot contain '/'`},
		{`severity = "low"` + "\nancestor_exe = ['']", "ancestor_exe: empty pattern"},
		{`severity = "low"` + "\nancestor_name = ['nginx']\nancestor_depth = 17", "ancestor_depth 17: want 1..16"},
		{`severity = "low"` + "\nancestor_exe = ['/usr/sbin/*']\nancestor_depth = -1", "ancestor_depth -1: want 1..16"},
		{`severity = "low"` + "\nexec = true\nancestor_depth = 3", "ancestor_depth 3: needs ancestor_exe or ancestor_name"},
		{`severity = "low"` + "\nparent_name = ['sh']\nancestor_depth = 2", "ancestor_depth 2: needs ancestor_exe or ancestor_name"},
		{`severity = "low"` + "\nuids = ['999-1']", `uids: "999-1": want "N" or "N-M" with N <= M`},
		{`severity = "low"` + "\nuids = ['x']", `uids: "x"`},
		{`severity = "low"` + "\nuids = ['4294967296']", `uids: "4294967296"`},
		{`severity = "low"` + "\nusers = ['a b']", `users: "a b": not a user name`},
		{`severity = "low"` + "\nexec = true\ntechnique = 'T9999'", `technique "T9999": not an ATT&CK technique id`},
		{`severity = "low"` + "\nexec = true\ntags = ['a b']", `tags: "a b": empty or contains white space`},
		{`severity = "low"` + "\nvt_malicious_min = -1", "vt_malicious_min -1: must be 0 or more"},
		{`severity = "low"` + "\npackage_status = ['trusted']", `package_status: "trusted": want one of package, modified, relocated, unowned, unindexed`},
	} {
		_, err := ParseRules("r.toml", []byte(head+c.body+"\n"))
		want := `r.toml:6: rule "bad": ` + c.want
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: error %v, want prefix %q", c.body, err, want)
		}
	}
	for _, c := range []struct{ text, want string }{
		{"[[rule]]\nname = \"x y\"\nseverity = \"low\"\nexec = true\n", `r.toml:1: rule "x y": name "x y": only letters`},
		{"[[rule]]\nseverity = \"low\"\nexec = true\n", `r.toml:1: rule #1: name is required`},
		{head + "severity = \"low\"\nexec = true\n[[rule]]\nname = \"ok\"\nseverity = \"low\"\nexec = true\n", `r.toml:10: rule "ok": duplicate name (rule #1 has it too)`},
		{"rule = [{name = \"a\", severity = \"low\"}]\n", `r.toml: rule "a": no condition`},
		{"[[rule]]\nname = \"a\"\nseverity = \"low\"\nexec = true\n[rule.extra]\nx = 1\n", `r.toml:5: rule "a": unknown key "rule.extra"`},
	} {
		_, err := ParseRules("r.toml", []byte(c.text))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: error %v, want prefix %q", c.text, err, c.want)
		}
	}

	// Inline rules name the rule and its position in the config.
	cfg := only(RuleConfig{Name: "a", Severity: "low", Exec: true}, RuleConfig{Name: "b", Severity: "low"})
	if _, err := newEnricher(cfg, testUsers, nil); err == nil || err.Error() != `hunt: rule[1] ("b"): no condition: a rule must set at least one` {
		t.Errorf("inline: %v", err)
	}
	cfg = only(RuleConfig{Name: "a", Severity: "low", Exec: true}, RuleConfig{Name: "b", Severity: "low", Exec: true, AncestorDepth: 4})
	if _, err := newEnricher(cfg, testUsers, nil); err == nil || err.Error() != `hunt: rule[1] ("b"): ancestor_depth 4: needs ancestor_exe or ancestor_name` {
		t.Errorf("inline ancestor_depth: %v", err)
	}
	cfg = only(RuleConfig{Name: "a", Severity: "low", Exec: true}, RuleConfig{Name: "a", Severity: "low", Exec: true})
	if _, err := newEnricher(cfg, testUsers, nil); err == nil || err.Error() != `hunt: rule[1] ("a"): duplicate name (rule #1 has it too)` {
		t.Errorf("inline duplicate: %v", err)
	}
}

func TestDefaultRulesParse(t *testing.T) {
	rcs, err := ParseRules(DefaultRulesName, DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		if rc.Description == "" {
			t.Errorf("built-in rule %q has no description", rc.Name)
		}
	}
}

// FuzzLoadRules feeds arbitrary rules files to the loader. Whatever it
// accepts must compile into an enricher that can match an event, with the
// same hits as matching every rule without the gate; whatever it rejects
// must be a *RuleError.
func FuzzLoadRules(f *testing.F) {
	f.Add(DefaultRules())
	f.Add([]byte("[[rule]]\nname = \"a\"\nseverity = \"low\"\nancestor_name = [\"beam.*\"]\nancestor_depth = 3\n" +
		"[[rule]]\nname = \"b\"\nseverity = \"low\"\nparent_name = [\"sh\"]\nancestor_exe = [\"/usr/sbin/*\"]\n"))
	seeds, _ := filepath.Glob("testdata/*.toml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	events := []ev{
		{exe: "/tmp/x", uid: 33, user: "www-data", parent: "/usr/sbin/nginx", key: "a\x01b", paths: []string{"./y", "/etc/z"}},
		{syscall: "ima", exe: "/dev/shm/.k", blocked: true, vt: 5},
		{exe: "/usr/bin/ls", uid: 120, parent: "/bin/sh", ancestors: []string{"", "/usr/lib/erlang/erts-13.2/bin/beam.smp"}},
		{exe: "/usr/bin/id", parent: "/usr/sbin/nginx", noAncestry: true},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rcs, err := ParseRules("f.toml", data)
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is %T, not *RuleError", err, err)
			}
			return
		}
		cfg := only(rcs...)
		e, err := newEnricher(cfg, testUsers, nil)
		if err != nil {
			t.Fatalf("ParseRules accepted rules New rejects: %v", err)
		}
		ungated, err := newEnricher(cfg, testUsers, nil)
		if err != nil {
			t.Fatal(err)
		}
		ungate(ungated)
		for _, x := range events {
			ev := x.build()
			_ = e.Enrich(t.Context(), ev)
			if len(ev.Hunt) > len(rcs) {
				t.Fatalf("%d hits from %d rules", len(ev.Hunt), len(rcs))
			}
			var got []string
			for _, h := range ev.Hunt {
				got = append(got, h.Rule)
			}
			if want := ungatedHits(t, ungated, x.build()); !slices.Equal(got, want) {
				t.Fatalf("hits %q, without the gate %q", got, want)
			}
		}
	})
}
