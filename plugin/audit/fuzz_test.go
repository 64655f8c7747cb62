package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// FuzzParse: the parser never panics; an error has a reason; Line is the
// input and every field is a slice of it or decoded from hex (the
// encoders' guarantees on the records are fuzzed in sinks/encode).
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
	})
}
