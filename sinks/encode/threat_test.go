package encode

import (
	"bytes"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"strings"
	"testing"
)

// The threat cache must write what Threat writes, in both formats and
// both column sets (one cache serves them all), also when a list with
// the same ids but other names or tactics comes next.
func TestThreatCacheExact(t *testing.T) {
	shell := audit.Technique{ID: "T1059.004", Name: "Unix Shell", ParentID: "T1059", Parent: "Command and Scripting Interpreter",
		Tactics: []audit.Tactic{{ID: "TA0002", Name: "Execution"}}}
	renamed := shell
	renamed.Name = "Unix Shell (renamed)"
	moved := shell
	moved.Tactics = []audit.Tactic{{ID: "TA0003", Name: "Persistence"}}
	transfer := audit.Technique{ID: "T1105", Name: "Ingress Tool Transfer", Tactics: []audit.Tactic{{ID: "TA0011", Name: "Command and Control"}}}
	var c ThreatCache
	cachedAs := func(f Format, ts []audit.Technique, details bool) []byte {
		var w Writer
		w.Reset(f, nil)
		w.Open()
		c.Write(&w, ts, details)
		w.Close()
		return w.B
	}
	cached := func(f Format, ts []audit.Technique) []byte { return cachedAs(f, ts, true) }
	for _, f := range []Format{JSON, Msgpack, JSON} {
		for i, ts := range [][]audit.Technique{{shell}, {shell}, {renamed}, {moved}, {shell, transfer}, {transfer, shell}, {shell}} {
			for _, details := range []bool{true, false, true} {
				for _, g := range []Format{f, 1 - f} {
					got := cachedAs(g, ts, details)
					var w Writer
					w.Reset(g, nil)
					w.Open()
					Threat(&w, ts, details)
					w.Close()
					if !bytes.Equal(got, w.B) {
						t.Errorf("format %d details %v list %d: cached %q\nwant %q", g, details, i, got, w.B)
					}
				}
			}
		}
	}
	if got := string(cached(JSON, []audit.Technique{renamed})); !strings.Contains(got, "(renamed)") {
		t.Errorf("renamed technique rendered from the cache: %s", got)
	}
	// The cache is bounded.
	for i := range 2 * maxThreatCache {
		cached(JSON, []audit.Technique{{ID: "T" + string(rune('A'+i%26)) + strings.Repeat("x", i/26)}})
	}
	if len(c.c.m) > maxThreatCache {
		t.Errorf("cache holds %d lists, bound %d", len(c.c.m), maxThreatCache)
	}
}

// TestThreatTacticsOnly: an entry without id (a Sigma rule's tactic tags
// that none of its techniques has) adds its tactics to threat.tactic and
// nothing to threat.technique.
func TestThreatTacticsOnly(t *testing.T) {
	transfer := audit.Technique{ID: "T1105", Name: "Ingress Tool Transfer", Tactics: []audit.Tactic{{ID: "TA0011", Name: "Command and Control"}}}
	only := audit.Technique{Tactics: []audit.Tactic{{ID: "TA0003", Name: "Persistence"}}}
	for _, ts := range [][]audit.Technique{{only, transfer}, {only}} {
		var w Writer
		w.Reset(JSON, nil)
		w.Open()
		Threat(&w, ts, false)
		w.Close()
		got := string(w.B)
		wantTech := `"technique":{"id":["T1105"]}`
		if len(ts) == 1 {
			wantTech = `"technique":{"id":[]}`
		}
		if !strings.Contains(got, wantTech) || !strings.Contains(got, `"tactic":{"id":["TA0003"`) {
			t.Errorf("%s: want %s and tactic TA0003", got, wantTech)
		}
	}
}
