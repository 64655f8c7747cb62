package encode

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// ruleEvent is an audit event with the three lists of the rule
// enrichers (and, with finding, a hash finding written between them).
func ruleEvent(i int, ts []audit.Technique, hunt []audit.HuntHit, sigma []audit.SigmaHit, finding bool) *audit.Event {
	ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1796454792, Serial: uint32(i)}}
	ev.Summary = &audit.Summary{}
	ev.Techniques, ev.Hunt, ev.Sigma = ts, hunt, sigma
	if finding {
		ev.Hashes = []audit.FileHash{{Path: "/tmp/worker", Algo: "sha256", Hex: strings.Repeat("ab", 32)}}
		ev.Package = &audit.PackageResult{Status: "unowned"}
	}
	return ev
}

// The full encoder's run of threat, hunt and sigma, appended whole for the
// next event with the same three lists, must write what rendering them
// writes, in both formats: the same lists again, a reloaded rule (same id,
// new title: a new list), one list changed of three, a list left out, a
// hash finding between them, the format switched on the same encoder.
func TestRuleRunExact(t *testing.T) {
	ts := []audit.Technique{{ID: "T1059.004", Name: "Unix Shell", ParentID: "T1059", Parent: "Command and Scripting Interpreter",
		Tactics: []audit.Tactic{{ID: "TA0002", Name: "Execution"}}}}
	hunt := []audit.HuntHit{{Rule: "exec_from_temp_dir", Severity: 3, Tags: []string{"exec_from_temp"}}}
	hit := audit.SigmaHit{ID: "312b42b1-bded-4441-8b58-163a3af58775", Title: "Potentially Suspicious Execution From Tmp Folder",
		Level: "medium", Author: "Joseliyo Sanchez, @Joseliyo_Jstnk", Tags: []string{"attack.stealth", "attack.t1036"}}
	sigma := []audit.SigmaHit{hit}
	reloaded := hit
	reloaded.Title = "Execution From Tmp \"Folder\" (reloaded)"
	sigma2 := []audit.SigmaHit{reloaded}
	hunt2 := []audit.HuntHit{{Rule: "exec_from_temp_dir", Severity: 4}}
	type c struct {
		ts      []audit.Technique
		hunt    []audit.HuntHit
		sigma   []audit.SigmaHit
		finding bool
	}
	cases := []c{
		{ts, hunt, sigma, false}, {ts, hunt, sigma, false}, {ts, hunt, sigma2, false}, {ts, hunt, sigma2, false},
		{ts, hunt, sigma, false}, {ts, hunt2, sigma, false}, {ts, hunt, sigma, true}, {ts, hunt, sigma, false},
		{nil, hunt, sigma, false}, {ts, nil, sigma, false}, {ts, hunt, nil, false}, {nil, nil, nil, false},
		{ts, hunt, sigma, false}, {ts[:0], hunt, sigma, false}, {slices.Clone(ts), hunt, sigma, false}, {ts, hunt, sigma, true},
	}
	cached := Full{}
	for _, f := range []Format{JSON, Msgpack, JSON} {
		cached.Format = f
		for i, k := range cases {
			ev := ruleEvent(i, k.ts, k.hunt, k.sigma, k.finding)
			got := slices.Clone(cached.Append(nil, ev))
			uncached := Full{Format: f}
			if want := uncached.Append(nil, ev); !bytes.Equal(got, want) {
				t.Errorf("format %d case %d: cached %q\nwant %q", f, i, got, want)
			}
		}
	}
	// The run is really reused: two events with the same lists, the
	// second written without rendering (the threat cache is not asked).
	cached = Full{}
	cached.Append(nil, ruleEvent(0, ts, hunt, sigma, false))
	cached.threat = ThreatCache{}
	doc := string(cached.Append(nil, ruleEvent(1, ts, hunt, sigma, false)))
	if cached.threat.c.last.doc != nil || !strings.Contains(doc, `"threat":{"framework":"MITRE ATT&CK"`) {
		t.Errorf("the second event's run was rendered again, or is missing: %s", doc)
	}
}

// The run holds the lists it compares against, so their arrays cannot be
// reused for other lists while it does: lists made afresh for each event,
// with a collection between events, never get an earlier event's bytes.
func TestRuleRunAfterGC(t *testing.T) {
	var cached Full
	for i := range 200 {
		id := fmt.Sprintf("rule-%d", i%7)
		ts := []audit.Technique{{ID: fmt.Sprintf("T%04d", 1000+i%5), Name: id}}
		hunt := []audit.HuntHit{{Rule: id, Severity: i % 4}}
		sigma := []audit.SigmaHit{{ID: id, Title: fmt.Sprintf("title %d", i), Level: "low"}}
		ev := ruleEvent(i, ts, hunt, sigma, false)
		got := slices.Clone(cached.Append(nil, ev))
		var uncached Full
		if want := uncached.Append(nil, ev); !bytes.Equal(got, want) {
			t.Fatalf("event %d: cached %q\nwant %q", i, got, want)
		}
		runtime.GC()
	}
}
