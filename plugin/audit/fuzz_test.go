package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// fixtureLines returns every line of testdata/*.log, the fuzz seeds.
func fixtureLines(f *testing.F) []string {
	logs, _ := filepath.Glob("testdata/*.log")
	var lines []string
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		f.Fatal("no seed lines in testdata/*.log")
	}
	return lines
}

// checkDoc asserts the encoder's guarantees on one document.
func checkDoc(t *testing.T, doc []byte) {
	t.Helper()
	if !utf8.Valid(doc) {
		t.Fatalf("not valid UTF-8: %q", doc)
	}
	if !json.Valid(doc) {
		t.Fatalf("not valid JSON: %s", doc)
	}
	if err := audittest.CheckKeys(doc); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
}

// FuzzParse: the parser never panics; any record it returns encodes to
// valid JSON and UTF-8 with no two keys of one object equal ignoring case;
// Line is the input and every field is a slice of it or decoded from hex.
func FuzzParse(f *testing.F) {
	for _, l := range fixtureLines(f) {
		f.Add(l)
	}
	f.Add("type=SYSCALL msg=audit(1.000:1): a=1 A=2 b=\"x\"\x1dB=3 b=4")
	f.Add("type=USER msg=audit(1.000:1): msg='a=1 A=2 msg='x''")
	f.Fuzz(func(t *testing.T, line string) {
		var p Parser
		r, err := p.Parse(line)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if r.Line != line {
			t.Fatalf("Line %q != input", r.Line)
		}
		for _, fl := range r.Fields {
			if fl.Enc != Hex && fl.Enc != SingleQuoted && !strings.Contains(line, fl.Raw) {
				t.Fatalf("raw %q of %s not in the line", fl.Raw, fl.Name)
			}
		}
		var enc JSONEncoder
		ev := &Event{ID: EventID{Node: r.Node, Sec: r.Sec, Msec: r.Msec, Serial: r.Serial}, Records: []*Record{r}}
		doc := enc.Append(nil, ev)
		if len(doc) == 0 || doc[len(doc)-1] != '\n' || bytes.Count(doc, []byte("\n")) != 1 {
			t.Fatalf("not one line: %q", doc)
		}
		checkDoc(t, doc[:len(doc)-1])
	})
}

// FuzzJSONEncoder: events built from fuzzed lines through the reassembler
// (small bounds, stream time) all encode to one valid JSON line each.
func FuzzJSONEncoder(f *testing.F) {
	lines := fixtureLines(f)
	for i := 0; i < len(lines); i += 3 {
		f.Add(strings.Join(lines[i:min(i+6, len(lines))], "\n"))
	}
	f.Fuzz(func(t *testing.T, input string) {
		pl := newPipeline(ReassemblerConfig{StreamTime: true, MaxInFlight: 4})
		for _, l := range strings.Split(input, "\n") {
			pl.line(l)
		}
		pl.r.Flush()
		docs := splitDocs(pl.out)
		if len(docs) != len(pl.evs) {
			t.Fatalf("%d documents for %d events", len(docs), len(pl.evs))
		}
		for _, d := range docs {
			if !utf8.Valid(d) || !json.Valid(d) {
				t.Fatalf("invalid document: %q", d)
			}
		}
	})
}
