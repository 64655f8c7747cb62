package hunt

import (
	"fmt"
	"slices"
	"testing"
)

// TestGateKeepsMatches: with every condition kind's rule and the built-in
// rules in one enricher (so that the gate's masks mix them), each event of
// the condition cases and of the built-in rules' scenarios gets exactly
// the hits that matching every rule without the gate gives; the gate
// leaves out only rules that do not match. The rules are duplicated past
// the 64 that the gate covers, so the ungated path is checked too.
func TestGateKeepsMatches(t *testing.T) {
	cfg := DefaultConfig()
	for i, c := range conditionCases {
		rc := c.rule
		rc.Name, rc.Severity = fmt.Sprintf("case%d", i), "low"
		cfg.Rules = append(cfg.Rules, rc)
	}
	for i, c := range conditionCases[:20] {
		rc := c.rule
		rc.Name, rc.Severity = fmt.Sprintf("late%d", i), "low"
		cfg.Rules = append(cfg.Rules, rc)
	}
	e := mustEnricher(t, cfg)
	if len(e.rules) <= 64 {
		t.Fatalf("%d rules: want more than 64", len(e.rules))
	}
	events := []ev{
		{exe: "/tmp/java"}, {exe: "/opt/app/sudo"}, {exe: "/usr/bin/nc.traditional", uid: 33, user: "www-data", parent: "/usr/sbin/apache2"},
		{syscall: "2", exe: "/usr/bin/cat", paths: []string{"/etc/shadow"}}, {syscall: "ima", exe: "/tmp/x", blocked: true},
		{syscall: "ima", exe: "/usr/bin/x", pkg: "modified", vt: 5},
	}
	for _, c := range conditionCases {
		events = append(events, c.ev)
	}
	ungated := mustEnricher(t, cfg)
	ungated.gate = gate{all: e.gate.all}
	matched := 0
	for i, x := range events {
		var f facts
		cand := f.extract(x.build(), ungated)
		if cand != e.gate.all {
			t.Fatalf("event %d: the ungated enricher ruled out rules %x", i, e.gate.all&^cand)
		}
		var want []string
		for j, r := range e.rules {
			if r.match(&f, e, j) {
				want = append(want, r.name)
			}
		}
		got := hits(t, e, x.build())
		if !slices.Equal(got, want) {
			t.Errorf("event %d (%+v): hits %q, without the gate %q", i, x, got, want)
		}
		matched += len(want)
	}
	if matched < len(events) {
		t.Errorf("only %d hits over %d events: the cases do not exercise the rules", matched, len(events))
	}
}
