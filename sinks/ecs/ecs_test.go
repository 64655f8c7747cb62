package ecs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/hunt"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/perf"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks/ecs"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// events parses, reassembles and enriches (ATT&CK from keys, built-in
// hunting rules) every line of the audit log at path.
func events(t testing.TB, path string) []*audit.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at, err := attack.New(attack.DefaultConfig(), &metrics.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	hu, err := hunt.New(hunt.DefaultConfig(), &metrics.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*audit.Event
	r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) { evs = append(evs, ev) })
	var p audit.Parser
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		rec, err := p.Parse(string(l))
		if err != nil {
			continue // counted and reported by the pipeline; not this test's subject
		}
		r.Push(rec)
	}
	r.Flush()
	for _, ev := range evs {
		if err := at.Enrich(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if err := hu.Enrich(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// inputs are the bundled capture from a real auditd, the golden-test logs
// and, when present, the corpus from make corpus.
func inputs(t *testing.T) []string {
	root, err := testsupport.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	in := []string{filepath.Join(root, "plugin/testdata/capture.log")}
	golden, _ := filepath.Glob(filepath.Join(root, "plugin/audit/testdata/*.log"))
	in = append(in, golden...)
	if c := "/var/tmp/audisp-enrich-corpus.log"; !testing.Short() {
		if _, err := os.Stat(c); err == nil {
			in = append(in, c)
		} else {
			t.Logf("corpus %s absent (make corpus): checking the bundled logs only", c)
		}
	}
	return in
}

// check validates every document against ecs.schema.json and the ECS
// field list, and returns the number of documents.
func check(t *testing.T, fields map[string]audittest.ECSField, out []byte) int {
	t.Helper()
	sch, err := audittest.SchemaAt(audittest.ECSSchemaPath)
	if err != nil {
		t.Fatal(err)
	}
	n, bad := 0, 0
	for line := range bytes.Lines(out) {
		n++
		err := audittest.ValidateDocument(sch, line)
		if err == nil {
			err = audittest.CheckECS(fields, line, "audisp_enrich")
		}
		if err != nil {
			if bad++; bad <= 5 {
				t.Errorf("document %d: %v\n%s", n, err, line)
			}
		}
	}
	return n
}

// TestProfileOnLogs: every document of every input, with each option
// set, is valid against the profile's schema and is ECS outside
// audisp_enrich.*; process.ppid never appears; references only when
// asked; event.original holds the records exactly as received.
func TestProfileOnLogs(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	for _, path := range inputs(t) {
		evs := events(t, path)
		sets := []ecs.Options{{}, {Original: true}, {References: true, Host: "collector-1"}}
		if len(evs) > 10000 {
			// The corpus: one pass with every option on writes every field.
			sets = []ecs.Options{{Original: true, References: true}}
		}
		for _, opts := range sets {
			var out []byte
			for _, ev := range evs {
				out = ecs.Encode(out, ev, opts)
			}
			if n := check(t, fields, out); n != len(evs) {
				t.Errorf("%s: %d documents for %d events", path, n, len(evs))
			}
			if bytes.Contains(out, []byte(`"ppid"`)) {
				t.Errorf("%s: process.ppid written; the profile uses process.parent.pid", path)
			}
			if refs := bytes.Contains(out, []byte(`"reference"`)) && bytes.Contains(out, []byte(`"name":["`)); refs != opts.References && bytes.Contains(out, []byte(`"threat"`)) {
				t.Errorf("%s: references written = %v with References = %v", path, refs, opts.References)
			}
			if opts.Original {
				lossless(t, out, evs)
			}
		}
	}
}

// originalDoc is what a document says about its original lines.
type originalDoc struct {
	Event struct {
		ID       string `json:"id"`
		Original string `json:"original"`
	} `json:"event"`
	Own struct {
		Escaped []string `json:"escaped"`
	} `json:"audisp_enrich"`
}

// lossless checks that event.original of each document gives back the
// event's records, line for line.
func lossless(t *testing.T, out []byte, evs []*audit.Event) {
	t.Helper()
	i := 0
	for line := range bytes.Lines(out) {
		var want []string
		for _, r := range evs[i].Records {
			want = append(want, r.Line)
		}
		got := rebuilt(t, line)
		if !slices.Equal(got, want) {
			t.Fatalf("event %d: event.original gives\n%q\nthe records are\n%q", i, got, want)
		}
		i++
	}
}

// originalOf returns event.id and event.original of the document,
// JSON-decoded, with each \xHH of event.original turned back into its byte
// when audisp_enrich.escaped lists it.
func originalOf(t testing.TB, doc []byte) (id, original string) {
	t.Helper()
	var d originalDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(d.Own.Escaped, "event.original") {
		return d.Event.ID, unescapeHex(d.Event.Original)
	}
	return d.Event.ID, d.Event.Original
}

// rebuilt returns the audit lines of the document's event.original
// (docs/schema.md, "Rebuilding auditd's lines").
func rebuilt(t testing.TB, doc []byte) []string {
	t.Helper()
	return ecs.Rebuild(originalOf(t, doc))
}

// TestOriginalRebuildsInput: with original = true the documents alone
// give back the input, byte for byte: for each document, event.original
// JSON-decoded (and, when audisp_enrich.escaped lists it, with each \xHH
// turned back into its byte), split at newlines, each line given the
// stamp of event.id back unless it still has one (ecs.Rebuild),
// is the next run of input lines of that event's node and stamp, and every
// input line is given back exactly once, except the EOE records (auditd's
// end-of-event marker, which carries no data: the events do not keep it)
// and lines the parser refuses (none in these inputs). No line of
// event.original keeps the event's stamp. Inputs: the bundled capture, the
// golden logs and the corpus from make corpus.
func TestOriginalRebuildsInput(t *testing.T) {
	id := regexp.MustCompile(`^(node=\S* )?type=(\S+) msg=audit\(([^)]*)\)`)
	kept := regexp.MustCompile(`^(node=\S* )?type=\S+ msg=audit\(([^)]*)\): `)
	for _, path := range inputs(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The input lines of each event, by node and stamp, in input order.
		runs := map[string][]string{}
		want := 0
		var p audit.Parser
		for l := range bytes.Lines(data) {
			l = bytes.TrimSuffix(l, []byte("\n"))
			m := id.FindSubmatch(l)
			if len(l) == 0 || m != nil && string(m[2]) == "EOE" {
				continue
			}
			if _, err := p.Parse(string(l)); err != nil {
				t.Errorf("%s: line refused by the parser (%v): %q", path, err, l)
				continue
			}
			if m == nil {
				t.Fatalf("%s: line without a msg=audit stamp: %q", path, l)
			}
			k := string(m[1]) + string(m[3])
			runs[k] = append(runs[k], string(l))
			want++
		}
		got, stamps, verbatim := 0, 0, 0
		for i, ev := range events(t, path) {
			doc := ecs.Encode(nil, ev, ecs.Options{Original: true})
			_, orig := originalOf(t, doc)
			lines := rebuilt(t, doc)
			m := id.FindStringSubmatch(lines[0])
			if m == nil {
				t.Fatalf("%s: document %d: event.original starts %q", path, i, lines[0])
			}
			own := fmt.Sprintf("%d.%03d:%d", ev.ID.Sec, ev.ID.Msec, ev.ID.Serial)
			for _, l := range strings.Split(orig, "\n") {
				if id.MatchString(l) {
					verbatim++
				}
				if s := kept.FindStringSubmatch(l); s != nil && s[2] == own && !strings.HasPrefix(l[len(s[0]):], "msg=audit(") {
					stamps++
				}
			}
			k := m[1] + m[3]
			run := runs[k]
			if len(run) < len(lines) || !slices.Equal(run[:len(lines)], lines) {
				t.Fatalf("%s: document %d: event.original gives\n%q\nthe input has\n%q", path, i, lines, run)
			}
			runs[k] = run[len(lines):]
			got += len(lines)
		}
		if got != want {
			t.Errorf("%s: %d lines rebuilt, the input has %d", path, got, want)
		}
		if stamps > 0 {
			t.Errorf("%s: %d lines kept the event's stamp", path, stamps)
		}
		t.Logf("%s: %d lines rebuilt byte for byte, %d of them written with their stamp", filepath.Base(path), got, verbatim)
	}
}

// unescapeHex undoes the \xHH form of strings that are not valid UTF-8
// (docs/schema.md): each \xHH is the byte HH.
func unescapeHex(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestExecDocument checks the fields of one exec event from the real
// capture against the records it came from.
func TestExecDocument(t *testing.T) {
	root, _ := testsupport.ModuleRoot()
	for _, ev := range events(t, filepath.Join(root, "plugin/testdata/capture.log")) {
		s := audit.SummaryOf(ev)
		if !s.Exec || len(ev.Techniques) == 0 {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(ecs.Encode(nil, ev, ecs.Options{}), &doc); err != nil {
			t.Fatal(err)
		}
		get := func(path string) any {
			var v any = doc
			for _, k := range strings.Split(path, ".") {
				m, _ := v.(map[string]any)
				v = m[k]
			}
			return v
		}
		for path, want := range map[string]any{
			"event.category":     []any{"process"},
			"event.type":         []any{"start"},
			"event.action":       s.Syscall,
			"process.executable": s.Exe,
			"process.pid":        json.Number(s.PID),
			"process.parent.pid": json.Number(s.PPID),
			"user.id":            s.UID,
			"threat.framework":   "MITRE ATT&CK",
			"threat.technique.subtechnique.id": func() any {
				var ids []any
				for _, tq := range ev.Techniques {
					if tq.ParentID != "" && !slices.Contains(ids, any(tq.ID)) {
						ids = append(ids, tq.ID)
					}
				}
				return ids
			}(),
		} {
			got := get(path)
			if f, ok := got.(float64); ok {
				got = json.Number(itoa(uint32(f)))
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			if !bytes.Equal(gj, wj) {
				t.Errorf("%s = %s, want %s", path, gj, wj)
			}
		}
		// The serial is in event.id only.
		if id, _ := get("event.id").(string); !strings.HasSuffix(id, ":"+itoa(ev.ID.Serial)) || get("audisp_enrich.serial") != nil {
			t.Errorf("event.id %q, audisp_enrich.serial %v: want the serial %d in event.id only", id, get("audisp_enrich.serial"), ev.ID.Serial)
		}
		args, _ := get("process.args").([]any)
		if len(args) != len(s.Args) || get("process.args_count") != float64(len(s.Args)) {
			t.Errorf("process.args = %v (count %v), want %q", args, get("process.args_count"), s.Args)
		}
		return
	}
	t.Fatal("the capture has no exec event with a technique")
}

func itoa(v uint32) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestEnrichmentDocuments covers what the logs do not: blocklist and
// VirusTotal hits, the login uid, verdict and alert documents, strings
// that are not UTF-8.
func TestEnrichmentDocuments(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	line := `type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=42 auid=1000 uid=0 euid=0 comm="x" exe=2F746D702F78FF key="T1059.004_x"` + "\x1d" + `AUID="alice" UID="root" SYSCALL=execve`
	var p audit.Parser
	rec, err := p.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	ev := &audit.Event{ID: audit.EventID{Node: "h1", Sec: 1700000000, Msec: 100, Serial: 5}, Records: []*audit.Record{rec}}
	sha := strings.Repeat("ab", 32)
	ev.Hashes = []audit.FileHash{{Path: "/tmp/x", Algo: "sha256", Hex: sha}, {Path: "/bin/sh", Algo: "sha256", Hex: strings.Repeat("cd", 32)}}
	ev.Blocklist = []audit.ListHit{{List: "mb", Label: "Mirai", Hash: sha}}
	ev.Package = &audit.PackageResult{Status: "relocated", Manager: "dpkg", Name: "coreutils", Version: "9.1-1", OriginalPath: "/usr/bin/env"}
	ev.Hunt = []audit.HuntHit{{Rule: "exec_from_temp", Severity: 3, Tags: []string{"hunt:temp"}}}
	ev.AddTag("hunt:exec_from_temp") // as the hunt enricher adds them: the rule's name, then its tags
	ev.AddTag("hunt:temp")
	ev.AddTag("hunt:other_rule") // no hit of that name: kept
	ev.Sigma = []audit.SigmaHit{{ID: "5e3b6f2c-0000-4000-8000-000000000001", Title: "Shell from tmp", Level: "high", Tags: []string{"attack.t1059.004"}}}
	ev.VirusTotal = &audit.VTResult{Status: "hit", Hash: sha, VTVerdict: &audit.VTVerdict{Malicious: 40, ThreatLabel: "bad\xffname"}}
	ev.Severity = 4
	ev.Parent = &audit.Process{PID: 1, Executable: "/usr/bin/bash", Args: []string{"bash", "-i"}}
	ev.AddTag("blocklist:mb")
	out := ecs.Encode(nil, ev, ecs.Options{})
	verdict := &audit.Event{Kind: audit.KindVerdict, ID: ev.ID}
	verdict.VirusTotal = &audit.VTResult{Status: "not_found", Hash: sha}
	verdict.Related = []string{ev.ID.String()}
	out = ecs.Encode(out, verdict, ecs.Options{Host: "local"})
	alert := &audit.Event{Kind: audit.KindAlert, ID: audit.EventID{Sec: 1700000002}}
	alert.Alert = &audit.Alert{Sink: "kafka", Reason: "buffer_full", Count: 12}
	out = ecs.Encode(out, alert, ecs.Options{Host: "local"})
	if n := check(t, fields, out); n != 3 {
		t.Fatalf("%d documents", n)
	}
	docs := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i, want := range [][]string{
		{`"kind":"alert"`, `"severity":4`, `"parent":{"pid":1,"executable":"/usr/bin/bash","name":"bash","args":["bash","-i"],"command_line":"bash -i"}`,
			`"related":{"hash":["` + sha + `","` + strings.Repeat("cd", 32) + `"],"user":["root","alice"]}`,
			`"audit_user":{"id":"1000","name":"alice"}`, `"blocklist":[{"list":"mb","label":"Mirai","hash":"` + sha + `"}]`,
			`"hunt":[{"rule":"exec_from_temp","severity":3}]`,
			`"package":{"status":"relocated","manager":"dpkg","name":"coreutils","version":"9.1-1","original_path":"/usr/bin/env"}`, `"sigma":[{"id":"5e3b6f2c-0000-4000-8000-000000000001","title":"Shell from tmp","level":"high","tags":["attack.t1059.004"]}]`, `"executable":"/tmp/x\\xff"`,
			`"escaped":["process.executable","process.name","audisp_enrich.virustotal.threat_label"]`, `"tags":["T1059.004_x","hunt:temp","hunt:other_rule","blocklist:mb"]`},
		{`"kind":"enrichment"`, `"host":{"name":"h1"}`, `"related_events":["h1:1700000000.100:5"]`, `"virustotal":{"status":"not_found"`},
		{`"kind":"pipeline_error"`, `"host":{"name":"local"}`, `"alert":{"sink":"kafka","reason":"buffer_full","count":12}`},
	} {
		for _, w := range want {
			if !bytes.Contains(docs[i], []byte(w)) {
				t.Errorf("document %d lacks %s:\n%s", i, w, docs[i])
			}
		}
	}
}

// TestECSCheckCatches: the ECS check must reject what is not ECS, or it
// checks nothing.
func TestECSCheckCatches(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	for name, doc := range map[string]string{
		"unknown field":     `{"process":{"ppid":1}}`,
		"wrong type":        `{"process":{"pid":"1"}}`,
		"array where none":  `{"user":{"id":["1"]}}`,
		"not allowed value": `{"event":{"kind":"audit"}}`,
		"bad date":          `{"@timestamp":"yesterday"}`,
		"object for a leaf": `{"user":{"name":{"x":1}}}`,
	} {
		if audittest.CheckECS(fields, []byte(doc), "audisp_enrich") == nil {
			t.Errorf("%s: %s passed the ECS check", name, doc)
		}
	}
	if err := audittest.CheckECS(fields, []byte(`{"process":{"pid":1,"args":["a"]},"audisp_enrich":{"anything":[1]}}`), "audisp_enrich"); err != nil {
		t.Errorf("valid document rejected: %v", err)
	}
}

// TestSize: on the bundled capture, the ecs document is at most a third of
// the full one and below laurel's 1.4 KB per event. The size with
// original = true is logged (docs/performance.md quotes it).
func TestSize(t *testing.T) {
	root, _ := testsupport.ModuleRoot()
	evs := events(t, filepath.Join(root, "plugin/testdata/capture.log"))
	var enc encode.Full
	var full, small, orig []byte
	for _, ev := range evs {
		full = enc.Append(full, ev)
		small = ecs.Encode(small, ev, ecs.Options{})
		orig = ecs.Encode(orig, ev, ecs.Options{Original: true})
	}
	n := float64(len(evs))
	t.Logf("%d events: full %.0f B/event, ecs %.0f B/event, ecs+original %.0f B/event", len(evs), float64(len(full))/n, float64(len(small))/n, float64(len(orig))/n)
	if 3*len(small) > len(full) {
		t.Errorf("ecs is %d bytes, more than a third of full's %d", len(small), len(full))
	}
	if len(small) >= 1400*len(evs) {
		t.Errorf("ecs is %d bytes for %d events, not below 1400 bytes per event", len(small), len(evs))
	}
}

// FuzzEncode: any line the parser accepts gives a document that is valid
// JSON and valid against the profile's schema.
func FuzzEncode(f *testing.F) {
	f.Add(`type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes ppid=1 pid=42 auid=1000 uid=0 euid=0 exe="/bin/x" key="T1059"`)
	f.Add(`node=h\xff type=USER_LOGIN msg=audit(1.001:2): pid=1 uid=0 msg='op=login acct="x" res=failed'`)
	f.Add(`type=INTEGRITY_RULE msg=audit(1.001:2): file="/x" hash="sha256:` + strings.Repeat("ab", 32) + `" ppid=1 pid=2 uid=0`)
	sch, err := audittest.SchemaAt(audittest.ECSSchemaPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var p audit.Parser
		rec, err := p.Parse(line)
		if err != nil {
			return
		}
		ev := &audit.Event{ID: audit.EventID{Node: rec.Node, Sec: rec.Sec, Msec: rec.Msec, Serial: rec.Serial}, Records: []*audit.Record{rec}}
		for _, opts := range []ecs.Options{{}, {Original: true, References: true, Host: "h"}} {
			doc := ecs.Encode(nil, ev, opts)
			if err := audittest.ValidateDocument(sch, doc); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
		}
	})
}

// BenchmarkEncode reports the bytes per event of both profiles on the
// corpus (make corpus), or on the bundled capture when it is absent, and
// the encoders' time per event. The events carry their summary, as in the
// pipeline (the enrichment pool computes it once for every encoder), so
// the figure is the encoder's alone.
func BenchmarkEncode(b *testing.B) {
	path := "/var/tmp/audisp-enrich-corpus.log"
	if _, err := os.Stat(path); err != nil {
		root, _ := testsupport.ModuleRoot()
		path = filepath.Join(root, "plugin/testdata/capture.log")
	}
	evs := events(b, path)
	sums := make([]audit.Summary, len(evs))
	for i, ev := range evs {
		audit.Summarize(ev, &sums[i])
		ev.Summary = &sums[i]
	}
	for _, c := range []struct {
		name string
		enc  func(dst []byte, ev *audit.Event) []byte
	}{
		{"full", func() func([]byte, *audit.Event) []byte {
			var e encode.Full
			return e.Append
		}()},
		{"ecs", func(dst []byte, ev *audit.Event) []byte { return ecs.Encode(dst, ev, ecs.Options{}) }},
		{"ecs+original", func(dst []byte, ev *audit.Event) []byte {
			return ecs.Encode(dst, ev, ecs.Options{Original: true})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var buf []byte
			total := 0
			b.ReportAllocs()
			cpu0, err := perf.ProcCPU(os.Getpid())
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				buf = c.enc(buf[:0], evs[i%len(evs)])
				total += len(buf)
			}
			cpu1, _ := perf.ProcCPU(os.Getpid())
			b.ReportMetric(float64(total)/float64(b.N), "B/event")
			// Process CPU (GC included): steadier than ns/op on a
			// loaded machine.
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
		})
	}
}

// TestLifecycleFlags: audisp_enrich.timed_out, evicted and late say what
// the event's flags say, as event.* of the full document does; late.log
// holds late records, so the late flag is seen set.
func TestLifecycleFlags(t *testing.T) {
	late := 0
	for _, path := range inputs(t) {
		for _, ev := range events(t, path) {
			var doc struct {
				Own struct {
					TimedOut bool `json:"timed_out"`
					Evicted  bool `json:"evicted"`
					Late     bool `json:"late"`
				} `json:"audisp_enrich"`
			}
			out := ecs.Encode(nil, ev, ecs.Options{})
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatalf("%s: %v\n%s", path, err, out)
			}
			got := [3]bool{doc.Own.TimedOut, doc.Own.Evicted, doc.Own.Late}
			if want := [3]bool{ev.TimedOut, ev.Evicted, ev.Late}; got != want {
				t.Errorf("%s: %s: timed_out, evicted, late = %v, want %v", path, ev.ID, got, want)
			}
			if ev.Late {
				late++
			}
		}
	}
	if late == 0 {
		t.Error("no late event in the inputs: the late flag went untested")
	}
}

// related_events and the lists' labels were written in the \xHH form
// without their paths in audisp_enrich.escaped (related_events added an
// empty path); the paths of the members shared with the full document
// (lists, package, virustotal) are under audisp_enrich.
func TestEnrichmentEscapedAreListed(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	hash := strings.Repeat("ab", 32)
	ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1796454792, Serial: 3}}
	ev.Summary = &audit.Summary{PID: "4242", Exe: "/tmp/worker"}
	ev.Related = []string{"h\xffst:1796454792.000:2"}
	ev.Blocklist = []audit.ListHit{{List: "fam", Label: "fam\xe9ly", Hash: hash}}
	ev.Allowlisted = []audit.ListHit{{List: "ok", Label: "ok\xe9", Hash: hash}}
	ev.Package = &audit.PackageResult{Status: "package", Manager: "dpkg", Name: "p\xe9"}
	out := ecs.Encode(nil, ev, ecs.Options{})
	var doc originalDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{"audisp_enrich.blocklist.label", "audisp_enrich.allowlisted.label",
		"audisp_enrich.package.name", "audisp_enrich.related_events"}
	if !slices.Equal(doc.Own.Escaped, want) {
		t.Errorf("escaped = %q, want %q\n%s", doc.Own.Escaped, want, out)
	}
	check(t, fields, out)
}

// A pid or ppid that is not a number is left out, and with nothing else
// of the process known it opened an empty process object.
func TestNoEmptyProcess(t *testing.T) {
	for _, s := range []audit.Summary{{PID: "x"}, {PPID: "?x"}} {
		ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1796454792, Serial: 3}, Summary: &s}
		if out := ecs.Encode(nil, ev, ecs.Options{}); bytes.Contains(out, []byte(`"process"`)) {
			t.Errorf("%+v: %s", s, out)
		}
	}
}

// A Sigma match makes the document an alert as a hunting hit does, when
// its level gives a severity (low and above); informational stays an
// event. Sigma matches never made it one.
func TestSigmaMatchIsAlert(t *testing.T) {
	for level, want := range map[string]string{"informational": "event", "low": "alert", "critical": "alert"} {
		ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1796454792, Serial: 3}, Summary: &audit.Summary{PID: "1"}}
		ev.Sigma = []audit.SigmaHit{{ID: "5b0c2f9e-0000-4000-8000-000000000001", Title: "t", Level: level}}
		var doc struct {
			Event struct{ Kind string } `json:"event"`
		}
		out := ecs.Encode(nil, ev, ecs.Options{})
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Event.Kind != want {
			t.Errorf("level %s: event.kind %q, want %q", level, doc.Event.Kind, want)
		}
	}
}

// TestOutcomeOfUserMessages: in every event of the capture and the golden
// logs that has a user-space record (USER_AUTH, USER_LOGIN, ...) with
// res=, event.outcome is that result, also when the event's SYSCALL
// record (the sendto that carried the message) says success=yes: a
// failed authentication is a failure.
func TestOutcomeOfUserMessages(t *testing.T) {
	root, err := testsupport.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(root, "plugin/audit/testdata/*.log"))
	logs = append(logs, filepath.Join(root, "plugin/testdata/capture.log"))
	results := map[string]string{"success": "success", "1": "success", "failed": "failure", "0": "failure"}
	checked, disagree := 0, 0
	for _, path := range logs {
		for _, ev := range events(t, path) {
			want, sys := "", ""
			for _, r := range ev.Records {
				if res, ok := r.Get("res"); ok && audit.IsUserSpace(r.TypeNum) && want == "" {
					want = results[res]
				}
				if v, ok := r.Get("success"); ok && r.TypeNum == audit.TypeSyscall {
					sys = v
				}
			}
			if want == "" {
				continue
			}
			var doc struct {
				Event struct{ Outcome string } `json:"event"`
			}
			if err := json.Unmarshal(ecs.Encode(nil, ev, ecs.Options{}), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Event.Outcome != want {
				t.Errorf("%s: event %s: event.outcome %q, want %q (res= of its user-space record; SYSCALL success=%q)",
					filepath.Base(path), ev.ID, doc.Event.Outcome, want, sys)
			}
			checked++
			if sys == "yes" && want == "failure" {
				disagree++
			}
		}
	}
	if checked == 0 || disagree == 0 {
		t.Fatalf("%d user-space events with res=, %d of them failed with a SYSCALL success=yes: the logs no longer test the precedence", checked, disagree)
	}
	t.Logf("%d user-space events with res=, %d failed with a SYSCALL success=yes", checked, disagree)
}

// A verdict document that a hunting rule judged (virustotal_malicious on a
// late verdict) is an alert with its severity; without a hit it stays an
// enrichment.
func TestJudgedVerdictIsAlert(t *testing.T) {
	for _, hit := range []bool{false, true} {
		ev := &audit.Event{Kind: audit.KindVerdict, ID: audit.EventID{Sec: 1796454792, Serial: 3}}
		ev.VirusTotal = &audit.VTResult{Status: "hit", Hash: strings.Repeat("ab", 32)}
		ev.Related = []string{ev.ID.String()}
		want, sev := "enrichment", 0
		if hit {
			ev.Hunt = []audit.HuntHit{{Rule: "virustotal_malicious", Severity: 3}}
			ev.Severity = 3
			want, sev = "alert", 3
		}
		var doc struct {
			Event struct {
				Kind     string
				Severity int
			} `json:"event"`
		}
		if err := json.Unmarshal(ecs.Encode(nil, ev, ecs.Options{}), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Event.Kind != want || doc.Event.Severity != sev {
			t.Errorf("hit %v: event %+v, want kind %q severity %d", hit, doc.Event, want, sev)
		}
	}
}

// TestForeignOutcomes: on other machines' lines (sinks/encode's
// testdata/foreign.log: SELinux AVC and USER_AVC, Android's numbered
// types, IMA policy records, a big-endian SOCKADDR) the documents are
// ECS, event.original gives back the records, and event.outcome is: the
// denied call's result where a SYSCALL record has one, else a USER_AVC's
// enforced denial; the res= of an IMA policy rule; none for a denial that
// does not say it was enforced.
func TestForeignOutcomes(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	root, err := testsupport.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, filepath.Join(root, "sinks/encode/testdata/foreign.log"))
	var out []byte
	got := map[string]string{}
	for _, ev := range evs {
		doc := ecs.Encode(nil, ev, ecs.Options{Original: true})
		out = append(out, doc...)
		var d struct {
			Event struct{ ID, Outcome string } `json:"event"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		got[d.Event.ID] = d.Event.Outcome
	}
	if n := check(t, fields, out); n != len(evs) {
		t.Errorf("%d documents for %d events", n, len(evs))
	}
	lossless(t, out, evs)
	for id, want := range map[string]string{
		":1677601548.669:1599": "failure", // AVC name_bind, SYSCALL bind success=no
		":1450655510.655:205":  "failure", // Android: AVC ioctl, SYSCALL success=no
		":1641131903.482:81":   "failure", // dbus USER_AVC, permissive=0
		":1442602150.292:763":  "",        // systemd USER_AVC without permissive=
		":1170021493.977:293":  "",        // AVC without permissive=
		":1515971856.024:10":   "",        // setenforce notice
		":1585509232.084:289":  "success", // IMA policy rule res=1
		":1708028025.033:10":   "success", // ppc64 bind
	} {
		if o, ok := got[id]; !ok || o != want {
			t.Errorf("event %s: event.outcome %q (present %v), want %q", id, o, ok, want)
		}
	}
}

// TestActionOfNumberedType: without a syscall, event.action is the first
// record type's name: an AVC sent as type=1400 (Android's logcat) is
// "avc", not "1400".
func TestActionOfNumberedType(t *testing.T) {
	var p audit.Parser
	for line, want := range map[string]string{
		`type=1400 msg=audit(1450655510.655:205): avc:  denied  { ioctl } for  pid=5654 comm=".test.thalitest" path="/sys/kernel/debug/tracing/trace_marker" dev="debugfs" ino=2064 scontext=u:r:untrusted_app:s0 tcontext=u:object_r:debugfs:s0 tclass=file permissive=0`: "avc",
		`type=UNKNOWN[1420] msg=audit(1731000000.000:42): ipe_op=EXECUTE`: "unknown[1420]",
	} {
		rec, err := p.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		ev := &audit.Event{ID: audit.EventID{Sec: rec.Sec, Msec: rec.Msec, Serial: rec.Serial}, Records: []*audit.Record{rec}}
		var d struct {
			Event struct{ Action string } `json:"event"`
		}
		if err := json.Unmarshal(ecs.Encode(nil, ev, ecs.Options{}), &d); err != nil {
			t.Fatal(err)
		}
		if d.Event.Action != want {
			t.Errorf("%.30s…: event.action %q, want %q", line, d.Event.Action, want)
		}
	}
}
