package encode

import (
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// TestSchemaEnrichedDocuments encodes events carrying every enrichment,
// and the verdict and alert kinds, and validates them against the schema.
func TestSchemaEnrichedDocuments(t *testing.T) {
	pl := replay(t, []byte("node=h1 type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=1000 uid=0 euid=1000 comm=\"sh\" exe=\"/bin/sh\" key=\"T1059.004_x\"\x1dARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"root\" EUID=\"alice\"\n"+
		"node=h1 type=INTEGRITY_RULE msg=audit(1700000000.100:5): file=\"/tmp/\xffx\" hash=\"sha256:ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015\" pid=2\n"+
		"node=h1 type=EOE msg=audit(1700000000.100:5): \n"))
	ev := pl.evs[0]
	ev.Techniques = []audit.Technique{
		{ID: "T1059.004", Name: "Unix Shell", Reference: "https://attack.mitre.org/techniques/T1059/004/", ParentID: "T1059", Parent: "Command and Scripting Interpreter",
			Tactics: []audit.Tactic{{ID: "TA0002", Name: "Execution", Reference: "https://attack.mitre.org/tactics/TA0002/"}}, Source: "key:T1059.004_x"},
		{ID: "T1105", Name: "Ingress Tool Transfer", Reference: "https://attack.mitre.org/techniques/T1105/"},
	}
	ev.Hashes = []audit.FileHash{{Path: "/tmp/\xffx", Algo: "sha256", Hex: "ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015", Record: 1}}
	ev.Blocklist = []audit.ListHit{{List: "bazaar", Label: "Mirai", Hash: "ab9e"}}
	ev.Allowlisted = []audit.ListHit{{List: "nsrl", Hash: "ab9e"}}
	ev.VirusTotal = &audit.VTResult{Status: "hit", Hash: "ab9e", VTVerdict: &audit.VTVerdict{Malicious: 40, Undetected: 20, ThreatLabel: "trojan.\xffmirai", Link: "https://www.virustotal.com/gui/file/ab9e"}}
	ev.Hunt = []audit.HuntHit{{Rule: "shell_from_tmp", Severity: 3, Tags: []string{"hunt:tmp"}}}
	ev.Parent = &audit.Process{PID: 1, Executable: "/sbin/init", Args: []string{"init"}}
	ev.Severity = 4
	ev.Tags = []string{"T1059.004_x", "ima:measured"}
	ev.Warnings = []string{"virustotal: budget exhausted"}
	var enc Full
	out := enc.Append(nil, ev)
	verdict := &audit.Event{Kind: audit.KindVerdict, ID: ev.ID}
	verdict.VirusTotal = &audit.VTResult{Status: "not_found", Hash: "ab9e"}
	verdict.Hashes = ev.Hashes
	verdict.Related = []string{ev.ID.String(), "h1:1700000001.000:6"}
	out = enc.Append(out, verdict)
	alert := &audit.Event{Kind: audit.KindAlert, ID: audit.EventID{Sec: 1700000002}}
	alert.Alert = &audit.Alert{Sink: "kafka", Reason: "buffer_full", Count: 12}
	out = enc.Append(out, alert)
	validate(t, out)
	docs := splitDocs(out)
	for _, want := range []string{`"subtechnique":{"id":["T1059.004"]`, `"tactic":{"id":["TA0002"]`, `"severity":4`, `"escaped":["file.path","hashes.path","virustotal.threat_label"]`,
		`"effective":{"id":"1000","name":"alice"}`, `"parent":{"pid":1`, `"tags":["T1059.004_x","ima:measured"]`} {
		if !strings.Contains(string(docs[0]), want) {
			t.Errorf("audit document lacks %s:\n%s", want, docs[0])
		}
	}
	if !strings.Contains(string(docs[1]), `"kind":"verdict"`) || !strings.Contains(string(docs[2]), `"alert":{"sink":"kafka","reason":"buffer_full","count":12}`) {
		t.Errorf("verdict/alert:\n%s\n%s", docs[1], docs[2])
	}
}

// TestSchemaCatchesDrift: the schema must reject documents that differ
// from what the encoder writes, or it validates nothing.
func TestSchemaCatchesDrift(t *testing.T) {
	sch, err := audittest.Schema()
	if err != nil {
		t.Fatal(err)
	}
	good := `{"schema_version":1,"kind":"audit","@timestamp":"2023-11-14T22:13:20.100Z","event":{"id":":1700000000.100:5","serial":5},"records":[{"type":"EOE","fields":{},"enc":""}]}`
	if err := audittest.ValidateDocument(sch, []byte(good)); err != nil {
		t.Fatalf("minimal document rejected: %v", err)
	}
	bad := map[string]string{
		"extra top-level key":     strings.Replace(good, `"kind"`, `"surprise":1,"kind"`, 1),
		"extra record key":        strings.Replace(good, `"enc":""`, `"enc":"","extra":1`, 1),
		"no schema_version":       strings.Replace(good, `"schema_version":1,`, ``, 1),
		"schema_version 2":        strings.Replace(good, `"schema_version":1`, `"schema_version":2`, 1),
		"timestamp without ms":    strings.Replace(good, `20.100Z`, `20Z`, 1),
		"timestamp with offset":   strings.Replace(good, `20.100Z`, `20.100+01:00`, 1),
		"no event.serial":         strings.Replace(good, `,"serial":5`, ``, 1),
		"serial as string":        strings.Replace(good, `"serial":5`, `"serial":"5"`, 1),
		"bad event id":            strings.Replace(good, `:1700000000.100:5`, `1700000000.1-5`, 1),
		"record without type":     strings.Replace(good, `"type":"EOE",`, ``, 1),
		"record without fields":   strings.Replace(good, `"fields":{},`, ``, 1),
		"numeric field value":     strings.Replace(good, `"fields":{}`, `"fields":{"a":1}`, 1),
		"bad enc letter":          strings.Replace(good, `"enc":""`, `"enc":"x"`, 1),
		"unknown kind":            strings.Replace(good, `"audit"`, `"other"`, 1),
		"verdict without related": strings.Replace(good, `"audit"`, `"verdict"`, 1),
		"case-duplicate keys":     strings.Replace(good, `"fields":{}`, `"fields":{"a":"1","A":"2"}`, 1),
		"invalid UTF-8":           strings.Replace(good, `"EOE"`, "\"E\xffE\"", 1),
		"hunt severity 0":         strings.Replace(good, `}]}`, `}],"hunt":[{"rule":"x","severity":0}]}`, 1),
	}
	for name, doc := range bad {
		if err := audittest.ValidateDocument(sch, []byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}
