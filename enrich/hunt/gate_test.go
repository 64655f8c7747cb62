package hunt

import (
	"fmt"
	"slices"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// TestGateKeepsMatches: with the built-in rules and condition cases' rules
// in one enricher (so that the gate's masks mix them), each event of the
// condition cases and a few scenarios gets exactly the hits that matching
// every rule on every fact without the gate gives; the gate leaves out
// only rules that do not match, and extract leaves out only facts that no
// rule left needs. Three enrichers of at most 64 rules hold the cases
// between them; a fourth holds them all and more, past the 64 rules that
// the gate covers.
func TestGateKeepsMatches(t *testing.T) {
	third := (len(conditionCases) + 2) / 3
	sets := [][]RuleConfig{caseRules("a", conditionCases[:third]), caseRules("b", conditionCases[third:2*third]),
		caseRules("c", conditionCases[2*third:]),
		append(caseRules("all", conditionCases), caseRules("late", conditionCases[:20])...)}
	events := []ev{
		{exe: "/tmp/java"}, {exe: "/opt/app/sudo"}, {exe: "/usr/bin/nc.traditional", uid: 33, user: "www-data", parent: "/usr/sbin/apache2"},
		{syscall: "2", exe: "/usr/bin/cat", paths: []string{"/etc/shadow"}}, {syscall: "ima", exe: "/tmp/x", blocked: true},
		{syscall: "ima", exe: "/usr/bin/x", pkg: "modified", vt: 5},
		{exe: "/usr/bin/ls", uid: 120, user: "rabbitmq", parent: "/bin/sh", ancestors: []string{"/bin/sh", "/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}},
	}
	for _, c := range conditionCases {
		events = append(events, c.ev)
	}
	for s, rules := range sets {
		cfg := DefaultConfig()
		cfg.Rules = rules
		e := mustEnricher(t, cfg)
		if n := len(e.rules); (s < 3) != (n <= 64) {
			t.Fatalf("set %d: %d rules", s, n)
		}
		ungated := ungate(mustEnricher(t, cfg))
		matched := 0
		for i, x := range events {
			want := ungatedHits(t, ungated, x.build())
			got := hits(t, e, x.build())
			if !slices.Equal(got, want) {
				t.Errorf("set %d, event %d (%+v): hits %q, without the gate %q", s, i, x, got, want)
			}
			matched += len(want)
		}
		if matched < len(events) {
			t.Errorf("set %d: only %d hits over %d events: the cases do not exercise the rules", s, matched, len(events))
		}
	}
}

// caseRules are the rules of cases, named prefix0, prefix1, ...
func caseRules(prefix string, cases []conditionCase) []RuleConfig {
	var rules []RuleConfig
	for i, c := range cases {
		rc := c.rule
		rc.Name, rc.Severity = fmt.Sprintf("%s%d", prefix, i), "low"
		rules = append(rules, rc)
	}
	return rules
}

// ungate turns e's gate off: no rule ruled out, every fact taken.
func ungate(e *Enricher) *Enricher {
	all := e.gate.all
	e.gate = gate{all: all, files: all, parent: all}
	return e
}

// ungatedHits are the names of the rules of an ungated enricher (see
// ungate) that match event, each rule matched on every fact.
func ungatedHits(t testing.TB, ungated *Enricher, event *audit.Event) []string {
	t.Helper()
	var f facts
	if cand := f.extract(event, ungated); cand != ungated.gate.all {
		t.Fatalf("the ungated enricher ruled out rules %x", ungated.gate.all&^cand)
	}
	var names []string
	for j, r := range ungated.rules {
		if r.match(&f, ungated, j) {
			names = append(names, r.name)
		}
	}
	return names
}

// With more than 64 rules the gate covers the first 64 only: an event
// that rules all of them out still gives the rules past 64 every fact
// (here the parent, the ancestors and the files of a non-exec event).
func TestGateLateRulesGetFacts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UseDefaults = false
	for i := range 64 {
		cfg.Rules = append(cfg.Rules, RuleConfig{Name: fmt.Sprintf("x%d", i), Severity: "low", Exec: true})
	}
	cfg.Rules = append(cfg.Rules,
		RuleConfig{Name: "late_parent", Severity: "low", ParentName: []string{"sh"}},
		RuleConfig{Name: "late_file", Severity: "low", File: []string{"/etc/shadow"}},
		RuleConfig{Name: "late_ancestor", Severity: "low", AncestorName: []string{"apache2"}})
	x := ev{syscall: "2", exe: "/usr/bin/cat", parent: "/bin/sh", ancestors: []string{"/usr/sbin/apache2"}, paths: []string{"/etc/shadow"}}
	got := hits(t, mustEnricher(t, cfg), x.build())
	want := ungatedHits(t, ungate(mustEnricher(t, cfg)), x.build())
	if !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("hits %q, without the gate %q (want the three late rules)", got, want)
	}
}
