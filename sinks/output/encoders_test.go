package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// logEvents parses and reassembles the audit log at path into events.
func logEvents(tb testing.TB, path string) []*audit.Event {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var evs []*audit.Event
	var p audit.Parser
	r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) { evs = append(evs, ev) })
	for _, l := range bytes.Split(data, []byte{'\n'}) {
		if rec, err := p.Parse(string(l)); err == nil {
			r.Push(rec)
		}
	}
	r.Flush()
	return evs
}

// enrichedEvents are events carrying every enrichment the model has, a
// verdict and an alert, with values that exercise every msgpack form:
// strings that are not valid UTF-8 (escaped form), of 32, 256 and 65536
// bytes and more, objects and arrays of 16 and 65536 members and more,
// negative numbers.
func enrichedEvents(t *testing.T) []*audit.Event {
	t.Helper()
	long := strings.Repeat("x", 70000)
	var p audit.Parser
	var recs []*audit.Record
	for _, l := range []string{
		"node=h\xff1 type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=1000 uid=0 euid=1000 comm=\"sh\" exe=\"/bin/sh\" key=\"T1059.004_x\" a=1 A=2 " + strings.Repeat("f=1 ", 20) + "\x1dARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"root\" EUID=\"alice\"",
		"node=h\xff1 type=EXECVE msg=audit(1700000000.100:5): argc=3 a0=\"sh\" a1=\"-c\" a2=\"" + strings.Repeat("y", 300) + "\"",
		"node=h\xff1 type=INTEGRITY_RULE msg=audit(1700000000.100:5): file=\"/tmp/\xffx\\y\" hash=\"sha256:ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015\" pid=2",
		"node=h\xff1 type=PROCTITLE msg=audit(1700000000.100:5): proctitle=" + strings.Repeat("41", 40) + "00" + strings.Repeat("42", 20),
		"node=h\xff1 type=USER_CMD msg=audit(1700000000.100:5): pid=2 uid=0 msg='cmd=6C73 res=success " + long + "=1'",
	} {
		r, err := p.Parse(l)
		if err != nil {
			t.Fatalf("%.80q: %v", l, err)
		}
		recs = append(recs, r)
	}
	ev := &audit.Event{ID: audit.EventID{Node: recs[0].Node, Sec: 1700000000, Msec: 100, Serial: 5}, Records: recs}
	ev.Techniques = []audit.Technique{
		{ID: "T1059.004", Name: "Unix Shell", Reference: "https://attack.mitre.org/techniques/T1059/004/", ParentID: "T1059", Parent: "Command and Scripting Interpreter",
			Tactics: []audit.Tactic{{ID: "TA0002", Name: "Execution", Reference: "https://attack.mitre.org/tactics/TA0002/"}}, Source: "key:T1059.004_x"},
		{ID: "T1105", Name: "Ingress Tool Transfer"},
	}
	ev.Hashes = []audit.FileHash{{Path: "/tmp/\xffx", Algo: "sha256", Hex: "ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015", Record: 2},
		{Path: "/bin/sh", Algo: "sha1", Hex: "0123456789abcdef0123456789abcdef01234567"}}
	ev.Blocklist = []audit.ListHit{{List: "bazaar", Label: "Mirai", Hash: "ab9e"}}
	ev.Allowlisted = []audit.ListHit{{List: "nsrl", Hash: "ab9e"}}
	ev.Package = &audit.PackageResult{Status: "modified", Manager: "dpkg", Name: "coreutils", Version: "9.1-1", OriginalPath: "/bin/\xffls"}
	ev.VirusTotal = &audit.VTResult{Status: "hit", Hash: "ab9e", VTVerdict: &audit.VTVerdict{Malicious: 40, Undetected: 20, Reputation: -70000,
		FirstSubmission: 1 << 40, ThreatLabel: "trojan.\xffmirai", Link: "https://www.virustotal.com/gui/file/ab9e"}}
	ev.Hunt = []audit.HuntHit{{Rule: "shell_from_tmp", Severity: 3, Tags: []string{"hunt:tmp"}}}
	ev.Sigma = []audit.SigmaHit{{ID: "1", Title: "Shell", Level: "high", Author: "me", Tags: []string{"attack.t1059"}}}
	ev.Parent = &audit.Process{PID: 1, Executable: "/sbin/init", Args: []string{"init", "\xff"}}
	ev.Severity = 4
	ev.Tags = []string{"T1059.004_x", "ima:measured"}
	ev.Related = []string{"h1:1700000000.000:4"}
	ev.Warnings = []string{"virustotal: budget exhausted", long}
	many := make([]string, 70000)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	wide := &audit.Event{ID: audit.EventID{Sec: 1700000001, Serial: 6}}
	wide.Tags, wide.Warnings = many[:17], many
	verdict := &audit.Event{Kind: audit.KindVerdict, ID: ev.ID}
	verdict.VirusTotal, verdict.Hashes, verdict.Related = &audit.VTResult{Status: "not_found", Hash: "ab9e"}, ev.Hashes, []string{ev.ID.String()}
	alert := &audit.Event{Kind: audit.KindAlert, ID: audit.EventID{Sec: 1700000002}}
	alert.Alert = &audit.Alert{Sink: "kafka", Reason: "buffer_full", Count: 1 << 33}
	evs := []*audit.Event{ev, wide, verdict, alert}
	for n := 14; n <= 17; n++ { // at the edges of fixarray and array16
		e := &audit.Event{ID: audit.EventID{Sec: 1700000003, Serial: uint32(n)}}
		e.Tags = many[:n]
		evs = append(evs, e)
	}
	return evs
}

// encoderInputs are the event sets every encoder is checked on: every
// golden-test log of the parser, the bundled capture from a real auditd,
// the demo capture (IMA), and enrichedEvents.
func encoderInputs(t *testing.T) map[string][]*audit.Event {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join("..", "..", "plugin", "audit", "testdata", "*.log"))
	logs = append(logs, filepath.Join("..", "..", "plugin", "testdata", "capture.log"), filepath.Join("..", "..", "plugin", "testdata", "demo", "capture.log"))
	in := map[string][]*audit.Event{"enriched": enrichedEvents(t)}
	for _, l := range logs {
		in[l] = logEvents(t, l)
	}
	if len(in) < 15 {
		t.Fatalf("only %d inputs: %v", len(in), logs)
	}
	return in
}

// TestMsgpackIsTheJSONDocument: for both profiles, the msgpack encoder
// writes each event's JSON document: decoded (vmihailenco/msgpack and
// encoding/json), they are the same data, field for field, number for
// number (audittest.SameDocument).
func TestMsgpackIsTheJSONDocument(t *testing.T) {
	inputs := encoderInputs(t)
	for _, profile := range []string{"", "/ecs/o0r0", "/ecs/o1r1"} {
		jenc, menc := newEncoder("json"+profile, "local-host"), newEncoder("msgpack"+profile, "local-host")
		for name, evs := range inputs {
			for i, ev := range evs {
				j := jenc.Append(nil, ev)
				if err := audittest.SameDocument(j, menc.Append(nil, ev)); err != nil {
					t.Fatalf("%s%s event %d: %v\njson: %.2000s", name, profile, i, err, j)
				}
			}
		}
	}
}

// TestMsgpackIndependentReader: Python's msgpack module (Debian's
// python3-msgpack, a reader written apart from the one in our go.mod)
// decodes every msgpack document, full and ecs, of the same inputs to
// what Python's json module decodes from the JSON document.
func TestMsgpackIndependentReader(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import msgpack").Run(); err != nil {
		t.Skipf("needs %s with the msgpack module (Debian package python3-msgpack, installed by .ci/run): %v", python, err)
	}
	dir := t.TempDir()
	inputs := encoderInputs(t)
	n := 0
	for _, profile := range []string{"", "/ecs/o1r1"} {
		var jb, mb []byte
		jenc, menc := newEncoder("json"+profile, "local-host"), newEncoder("msgpack"+profile, "local-host")
		for _, evs := range inputs {
			for _, ev := range evs {
				jb = jenc.Append(jb, ev)
				mb = menc.Append(mb, ev)
				n++
			}
		}
		name := filepath.Join(dir, "docs"+strings.ReplaceAll(profile, "/", "-"))
		if err := os.WriteFile(name+".json", jb, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name+".msgpack", mb, 0o644); err != nil {
			t.Fatal(err)
		}
		script := `import json, msgpack, sys
docs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
n = 0
with open(sys.argv[2], "rb") as f:
    for i, d in enumerate(msgpack.Unpacker(f, raw=False, strict_map_key=True, max_buffer_size=1 << 30)):
        if i >= len(docs) or d != docs[i]:
            sys.exit("document %d differs" % i)
        n += 1
if n != len(docs):
    sys.exit("%d msgpack documents for %d JSON documents" % (n, len(docs)))
print(n)
`
		out, err := exec.Command(python, "-c", script, name+".json", name+".msgpack").CombinedOutput()
		if err != nil {
			t.Fatalf("profile %q: python: %v\n%s", profile, err, out)
		}
		if strings.TrimSpace(string(out)) == "0" {
			t.Fatalf("profile %q: no documents compared", profile)
		}
	}
	if n == 0 {
		t.Fatal("no events")
	}
}

// TestMsgpackFileFraming: a file sink with msgpack follows every document
// with exactly one newline, also a document whose last byte is 0x0a (the
// ecs document of an alert with a count of 10 ends in the msgpack integer
// 10); the file then reads as value, newline, value, newline, and each
// value is the JSON sink's document.
func TestMsgpackFileFraming(t *testing.T) {
	dir := t.TempDir()
	cfg, err := conf.Parse("t.toml", []byte(fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "j"
type = "file"
profile = "ecs"
[sink.file]
path = %q
[[sink]]
name = "m"
type = "file"
profile = "ecs"
encoding = "msgpack"
[sink.file]
path = %q
`, dir, filepath.Join(dir, "j"), filepath.Join(dir, "m"))))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, 1, Options{Metrics: &metrics.Registry{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(context.Background(), nil)
	publish(s, 0, 19)
	alert := &audit.Event{Kind: audit.KindAlert, ID: audit.EventID{Sec: 1700000000}}
	alert.Alert = &audit.Alert{Sink: "x", Reason: "buffer_full", Count: 10}
	s.Deliver(alert, s.Encode(0, alert, nil))
	s.Flush()
	s.Stop(context.Background())
	if enc := newEncoder("msgpack/ecs/o0r0", ""); !bytes.HasSuffix(enc.Append(nil, alert), []byte{'\n'}) {
		t.Fatal("the ecs msgpack document of the alert no longer ends in 0x0a: this test checks nothing")
	}
	js, err := os.ReadFile(filepath.Join(dir, "j"))
	if err != nil {
		t.Fatal(err)
	}
	mp, err := os.ReadFile(filepath.Join(dir, "m"))
	if err != nil {
		t.Fatal(err)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(mp))
	lines := bytes.Split(bytes.TrimSuffix(js, []byte{'\n'}), []byte{'\n'})
	for i, l := range lines {
		raw, err := dec.DecodeRaw()
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if b, err := dec.Buffered().(io.ByteReader).ReadByte(); err != nil || b != '\n' {
			t.Fatalf("document %d: %q, then %q (%v), not a newline", i, raw, b, err)
		}
		if err := audittest.SameDocument(l, raw); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
	}
	if len(lines) != 20 {
		t.Errorf("%d documents, want 20", len(lines))
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		t.Errorf("data after 20 documents: %v", err)
	}
}
