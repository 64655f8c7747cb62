package encode

import (
	"bytes"
	"flag"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the *.golden.jsonl fixtures from the current encoder")

// fixtures holds the parser's fixtures (NAME.log) and the documents the
// full profile writes for them (NAME.golden.jsonl).
const fixtures = "../../plugin/audit/testdata"

// TestGolden replays every fixtures/*.log file through audit.Parser,
// audit.Reassembler (stream time) and Full, compares the documents with
// NAME.golden.jsonl beside it, validates each against the JSON Schema, and
// checks that the original lines can be rebuilt from the documents and
// that an event id has two documents only when the later one is late.
func TestGolden(t *testing.T) {
	logs, err := filepath.Glob(filepath.Join(fixtures, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range logs {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pl := replay(t, in)
			for _, e := range pl.errs {
				t.Errorf("fixture line rejected: %v", e)
			}
			validate(t, pl.out)
			golden := strings.TrimSuffix(path, ".log") + ".golden.jsonl"
			if *update {
				if err := os.WriteFile(golden, pl.out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(pl.out, want) {
				got, exp := splitDocs(pl.out), splitDocs(want)
				for i := 0; i < max(len(got), len(exp)); i++ {
					var g, w []byte
					if i < len(got) {
						g = got[i]
					}
					if i < len(exp) {
						w = exp[i]
					}
					if !bytes.Equal(g, w) {
						t.Errorf("document %d differs from %s:\n got: %s\nwant: %s", i+1, golden, g, w)
					}
				}
			}
			checkRebuild(t, in, pl.out)
			checkOneDocPerID(t, pl.evs)
		})
	}
}

// checkRebuild asserts that the lines rebuilt from the documents are
// exactly the input lines that are not EOE (EOE records, type=EOE or
// type=1320, close events and are not kept), as a multiset per event.
func checkRebuild(t *testing.T, in, out []byte) {
	t.Helper()
	want := map[string]int{}
	var p audit.Parser
	for _, l := range strings.Split(string(in), "\n") {
		if l == "" {
			continue
		}
		if r, err := p.Parse(l); err == nil && r.TypeNum == audit.TypeEOE {
			continue
		}
		want[l]++
	}
	for i, doc := range splitDocs(out) {
		lines, err := rebuildLines(doc)
		if err != nil {
			t.Errorf("document %d: cannot rebuild lines: %v", i+1, err)
			continue
		}
		for _, l := range lines {
			if want[l] == 0 {
				t.Errorf("document %d: rebuilt line is not in the input:\n%q", i+1, l)
				continue
			}
			want[l]--
		}
	}
	for l, n := range want {
		if n > 0 {
			t.Errorf("input line not rebuilt from any document:\n%q", l)
		}
	}
}

// checkOneDocPerID asserts that no two events share an id unless the
// later ones are flagged late.
func checkOneDocPerID(t *testing.T, evs []*audit.Event) {
	t.Helper()
	seen := map[audit.EventID]bool{}
	for _, ev := range evs {
		if seen[ev.ID] != ev.Late {
			t.Errorf("event %s: late %v, but a document of its id came before: %v", ev.ID, ev.Late, seen[ev.ID])
		}
		seen[ev.ID] = true
	}
}

// TestSchemaExample: the document under "## Example" of docs/schema.md
// (its lines joined without their indentation) is what Full writes for
// the exec event it describes. It showed process.args from PROCTITLE,
// which only EXECVE gives.
func TestSchemaExample(t *testing.T) {
	ex := testsupport.DocBlock(t, "docs/schema.md", "\n## Example\n", "```json\n", "```\n")
	var want strings.Builder
	for l := range strings.Lines(ex) {
		want.WriteString(strings.TrimLeft(strings.TrimSuffix(l, "\n"), " "))
	}
	want.WriteByte('\n')
	const in = "type=SYSCALL msg=audit(1795454964.804:12): arch=c000003e syscall=59 success=yes exit=0 pid=99 uid=0 tty=(none) " +
		"comm=68656C6C6F20776F726C64 exe=2F6F70742F776974682073706163652F68656C6C6F20776F726C64 key=(null)\x1dARCH=x86_64 SYSCALL=execve UID=\"root\"\n" +
		"type=PROCTITLE msg=audit(1795454964.804:12): proctitle=2F6F70742F776974682073706163652F68656C6C6F20776F726C64\n" +
		"type=EOE msg=audit(1795454964.804:12): \n"
	if got := replay(t, []byte(in)).out; string(got) != want.String() {
		t.Errorf("docs/schema.md's example:\n%s\nFull writes:\n%s", want.String(), got)
	}
}
