package ecs

import (
	"bytes"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// The threat and sigma blocks come from the scratch's render caches: a
// document written with a scratch that has seen other events must equal
// the one written with a fresh scratch (nothing cached), in both formats,
// with and without references, also when a rule is reloaded with another
// title, level, author or tags under the same id, or a technique renamed.
func TestCacheExact(t *testing.T) {
	var p audit.Parser
	rec, err := p.Parse(`type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=42 auid=1000 uid=0 euid=0 comm="worker" exe="/tmp/w/worker" key="T1059.004_x"`)
	if err != nil {
		t.Fatal(err)
	}
	shell := audit.Technique{ID: "T1059.004", Name: "Unix Shell", Reference: "https://attack.mitre.org/techniques/T1059/004/",
		ParentID: "T1059", Parent: "Command and Scripting Interpreter", Tactics: []audit.Tactic{{ID: "TA0002", Name: "Execution", Reference: "https://attack.mitre.org/tactics/TA0002/"}}}
	renamed := shell
	renamed.Name = "Unix Shell (renamed)"
	masq := audit.Technique{ID: "T1036", Name: "Masquerading", Tactics: []audit.Tactic{{ID: "TA0005", Name: "Defense Evasion"}}}
	tmp := audit.SigmaHit{ID: "312b42b1-bded-4441-8b58-163a3af58775", Title: "Potentially Suspicious Execution From Tmp Folder",
		Level: "medium", Author: "Joseliyo Sanchez, @Joseliyo_Jstnk", Tags: []string{"attack.stealth", "attack.t1036"}}
	folders := audit.SigmaHit{ID: "a39d7fa7-3fbd-4dc2-97e1-d87f546b1bbc", Title: "Program Executions in Suspicious Folders",
		Level: "medium", Author: "Florian Roth (Nextron Systems)", Tags: []string{"attack.t1587", "attack.t1584"}}
	retitled, reloaded := tmp, tmp
	retitled.Title = "Execution From Tmp"
	reloaded.Title, reloaded.Level, reloaded.Author, reloaded.Tags = "Execution From Tmp \"Folder\"", "high", "", []string{"attack.t1036.005"}
	cases := []struct {
		techs []audit.Technique
		hits  []audit.SigmaHit
	}{
		{[]audit.Technique{masq}, []audit.SigmaHit{folders, tmp}},
		{[]audit.Technique{masq}, []audit.SigmaHit{folders, tmp}},
		{[]audit.Technique{shell, masq}, []audit.SigmaHit{tmp}},
		{[]audit.Technique{renamed, masq}, []audit.SigmaHit{retitled}},
		{[]audit.Technique{renamed, masq}, []audit.SigmaHit{reloaded}},
		{nil, nil},
		{[]audit.Technique{shell, masq}, []audit.SigmaHit{tmp, folders}},
		{[]audit.Technique{masq}, []audit.SigmaHit{folders, tmp}},
	}
	var sc scratch
	n := 0
	for round := range 2 {
		for i, c := range cases {
			ev := &audit.Event{ID: audit.EventID{Sec: 1700000000, Msec: 100, Serial: uint32(i)}, Records: []*audit.Record{rec}}
			ev.Techniques, ev.Sigma = c.techs, c.hits
			for _, f := range []encode.Format{encode.JSON, encode.Msgpack} {
				for _, refs := range []bool{false, true} {
					opts := Options{References: refs}
					var cached, fresh encode.Writer
					cached.Reset(f, nil)
					write(&cached, ev, opts, &sc)
					fresh.Reset(f, nil)
					write(&fresh, ev, opts, new(scratch))
					if !bytes.Equal(cached.B, fresh.B) {
						t.Errorf("round %d event %d format %d references %v: cached\n%q\nwant\n%q", round, i, f, refs, cached.B, fresh.B)
					}
					if f == encode.JSON && len(c.hits) > 0 && !bytes.Contains(cached.B, []byte(`"title":"`+c.hits[0].Title[:10])) {
						t.Errorf("event %d: sigma block missing: %s", i, cached.B)
					}
					n++
				}
			}
		}
	}
	if n != 2*len(cases)*4 {
		t.Fatalf("%d documents compared", n)
	}
}
