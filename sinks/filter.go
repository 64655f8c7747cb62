package sinks

import (
	"fmt"
	"slices"
	"strings"
)

// Filter selects the documents a sink receives (the `[sink.filter]` table).
// The zero Filter passes everything.
//
// Kinds selects document kinds. The other criteria look at the content of
// audit events and apply to documents of kind "audit" only, so that loss
// alerts and late verdicts reach every sink unless Kinds excludes them.
// All configured criteria must hold; within one list any entry may match.
type Filter struct {
	// Kinds lists the document kinds to pass: "audit", "verdict",
	// "alert". Empty passes all kinds.
	Kinds []string `toml:"kinds"`
	// Types passes events holding at least one of these record types
	// (e.g. "EXECVE", "INTEGRITY_RULE").
	Types []string `toml:"types"`
	// Keys passes events carrying at least one of these audit rule keys.
	Keys []string `toml:"keys"`
	// Techniques passes events tagged with one of these ATT&CK ids; an id
	// also matches its sub-techniques ("T1059" matches "T1059.004").
	Techniques []string `toml:"techniques"`
	// Tags passes events carrying at least one of these tags (rule keys,
	// hunt:<rule>, blocklist:<list>, ima:*, the hunting rules' tags, sigma:<id> and
	// sigma_level:<level>).
	Tags []string `toml:"tags"`
	// Nodes passes events from these nodes (the node= name).
	Nodes []string `toml:"nodes"`
	// MinSeverity passes events whose severity is at least this (0 none,
	// 1 low, 2 medium, 3 high, 4 critical). 0 passes all.
	MinSeverity int `toml:"min_severity"`
}

var filterKinds = []string{"audit", "verdict", "alert"}

// Validate reports the first invalid option.
func (f *Filter) Validate() error {
	for _, k := range f.Kinds {
		if !slices.Contains(filterKinds, k) {
			return fmt.Errorf("filter kinds: %q is not one of %s", k, strings.Join(filterKinds, ", "))
		}
	}
	for name, l := range map[string][]string{"types": f.Types, "keys": f.Keys, "techniques": f.Techniques, "nodes": f.Nodes, "tags": f.Tags} {
		if slices.Contains(l, "") {
			return fmt.Errorf("filter %s: empty entry", name)
		}
	}
	if f.MinSeverity < 0 || f.MinSeverity > 4 {
		return fmt.Errorf("filter min_severity %d: must be between 0 and 4", f.MinSeverity)
	}
	return nil
}

// Match reports whether a document described by m passes the filter. A
// nil Filter passes everything. Safe for concurrent use.
func (f *Filter) Match(m Meta) bool {
	if f == nil {
		return true
	}
	kind := m.Kind
	if kind == "" {
		kind = "audit"
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, kind) {
		return false
	}
	if kind != "audit" {
		return true
	}
	if m.Severity < f.MinSeverity {
		return false
	}
	if len(f.Nodes) > 0 && !slices.Contains(f.Nodes, m.Node) {
		return false
	}
	if len(f.Types) > 0 && !anyIn(m.Types, f.Types) {
		return false
	}
	if len(f.Keys) > 0 && !anyIn(m.Keys, f.Keys) {
		return false
	}
	if len(f.Tags) > 0 && !anyIn(m.Tags, f.Tags) && !anyIn(m.Keys, f.Tags) {
		return false
	}
	if len(f.Techniques) > 0 && !slices.ContainsFunc(m.Techniques, func(t string) bool {
		return slices.ContainsFunc(f.Techniques, func(want string) bool {
			return t == want || (strings.HasPrefix(t, want) && t[len(want)] == '.')
		})
	}) {
		return false
	}
	return true
}

func anyIn(have, want []string) bool {
	return slices.ContainsFunc(have, func(s string) bool { return slices.Contains(want, s) })
}
