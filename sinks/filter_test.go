package sinks_test

import (
	"testing"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

func TestFilterMatch(t *testing.T) {
	exec := sinks.Meta{Node: "web1", Types: []string{"SYSCALL", "EXECVE"}, Keys: []string{"exec"},
		Techniques: []string{"T1059.004"}, Severity: 2, Kind: "audit"}
	alert := sinks.Meta{Kind: "alert", Severity: 4}
	cases := []struct {
		name string
		f    *sinks.Filter
		m    sinks.Meta
		want bool
	}{
		{"nil passes", nil, exec, true},
		{"zero passes", &sinks.Filter{}, exec, true},
		{"type hit", &sinks.Filter{Types: []string{"EXECVE"}}, exec, true},
		{"type miss", &sinks.Filter{Types: []string{"INTEGRITY_RULE"}}, exec, false},
		{"key hit", &sinks.Filter{Keys: []string{"x", "exec"}}, exec, true},
		{"key miss", &sinks.Filter{Keys: []string{"x"}}, exec, false},
		{"technique parent matches sub-technique", &sinks.Filter{Techniques: []string{"T1059"}}, exec, true},
		{"technique prefix is not a parent", &sinks.Filter{Techniques: []string{"T105"}}, exec, false},
		{"technique exact", &sinks.Filter{Techniques: []string{"T1059.004"}}, exec, true},
		{"severity enough", &sinks.Filter{MinSeverity: 2}, exec, true},
		{"severity too low", &sinks.Filter{MinSeverity: 3}, exec, false},
		{"node", &sinks.Filter{Nodes: []string{"db1"}}, exec, false},
		{"all criteria must hold", &sinks.Filter{Types: []string{"EXECVE"}, MinSeverity: 3}, exec, false},
		{"content criteria skip alerts", &sinks.Filter{Types: []string{"EXECVE"}, MinSeverity: 3}, alert, true},
		{"kinds exclude alerts", &sinks.Filter{Kinds: []string{"audit"}}, alert, false},
		{"empty kind is audit", &sinks.Filter{Kinds: []string{"audit"}}, sinks.Meta{}, true},
	}
	for _, c := range cases {
		if got := c.f.Match(c.m); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	good := sinks.Filter{Kinds: []string{"audit", "alert"}, Types: []string{"EXECVE"}, MinSeverity: 4}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []sinks.Filter{
		{Kinds: []string{"audits"}},
		{MinSeverity: 5},
		{MinSeverity: -1},
		{Keys: []string{""}},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("accepted %+v", f)
		}
	}
}

func TestFilterTags(t *testing.T) {
	f := &sinks.Filter{Tags: []string{"hunt:exec_from_temp_dir", "T1059_x"}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		m    sinks.Meta
		want bool
	}{
		{sinks.Meta{Tags: []string{"hunt:exec_from_temp_dir"}}, true},
		{sinks.Meta{Keys: []string{"T1059_x"}}, true}, // keys are tags too
		{sinks.Meta{Tags: []string{"blocklist:x"}, Keys: []string{"other"}}, false},
		{sinks.Meta{Kind: "alert"}, true}, // content criteria apply to audit documents only
	}
	for _, c := range cases {
		if got := f.Match(c.m); got != c.want {
			t.Errorf("Match(%+v) = %v, want %v", c.m, got, c.want)
		}
	}
	if err := (&sinks.Filter{Tags: []string{""}}).Validate(); err == nil {
		t.Error("empty tag accepted")
	}
}
