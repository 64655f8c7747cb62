package encode

import (
	"bytes"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"strings"
	"testing"
)

// The encoder's threat cache must write what appendThreat writes, also
// when a list with the same ids but other names or tactics comes next.
func TestThreatCacheExact(t *testing.T) {
	shell := audit.Technique{ID: "T1059.004", Name: "Unix Shell", ParentID: "T1059", Parent: "Command and Scripting Interpreter",
		Tactics: []audit.Tactic{{ID: "TA0002", Name: "Execution"}}}
	renamed := shell
	renamed.Name = "Unix Shell (renamed)"
	moved := shell
	moved.Tactics = []audit.Tactic{{ID: "TA0003", Name: "Persistence"}}
	transfer := audit.Technique{ID: "T1105", Name: "Ingress Tool Transfer", Tactics: []audit.Tactic{{ID: "TA0011", Name: "Command and Control"}}}
	var c threatCache
	for i, ts := range [][]audit.Technique{{shell}, {shell}, {renamed}, {moved}, {shell, transfer}, {transfer, shell}, {shell}} {
		got := c.append(nil, ts)
		want := appendThreat(nil, ts, 3)
		if !bytes.Equal(got, want) {
			t.Errorf("list %d: cached %s\nwant %s", i, got, want)
		}
	}
	if got := string(c.append(nil, []audit.Technique{renamed})); !strings.Contains(got, "(renamed)") {
		t.Errorf("renamed technique rendered from the cache: %s", got)
	}
	// The cache is bounded.
	for i := range 2 * maxThreatCache {
		c.append(nil, []audit.Technique{{ID: "T" + string(rune('A'+i%26)) + strings.Repeat("x", i/26)}})
	}
	if len(c.m) > maxThreatCache {
		t.Errorf("cache holds %d lists, bound %d", len(c.m), maxThreatCache)
	}
}
