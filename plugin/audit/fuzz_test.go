package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fixtureLines returns every line of testdata/*.log, the fuzz seeds.
func fixtureLines(f testing.TB) []string {
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
// input and every field is a slice of it or decoded from hex; when
// PlainText holds, every name and Bare or Quoted value is plain text (the
// encoders' guarantees on the records are fuzzed in sinks/encode).
func FuzzParse(f *testing.F) {
	for _, l := range fixtureLines(f) {
		f.Add(l)
	}
	f.Add(`type=USER_CMD msg=audit(1.000:1): pid=1 msg='cwd="/" cmd=6C73 x=a"b' a="q"`)
	f.Add(`type=SYSCALL msg=audit(1.000:1): a=x"y b="open`)
	f.Add("type=SYSCALL msg=audit(1.000:1): a=\"x\x1dy\" b=1\x1dUID=\"root\" X=a\x1db")
	f.Add("type=SYSCALL msg=audit(1.000:1): a=1 A=2 b=\"x\"\x1dB=3 b=4")
	f.Add("type=USER msg=audit(1.000:1): msg='a=1 A=2 msg='x''")
	// foreign lines: SELinux decisions (kernel, user space, numbered
	// type), cut or odd ones, a decimal type (foreign_test.go)
	for _, l := range []string{avcNginx, avcPostfix, androidAVC, androidSyscall, androidEOE, userAVCDbus, userAVCHexPerm, userAVCNotice, avcAppArmor} {
		f.Add(l)
	}
	f.Add("type=AVC msg=audit(1.000:1): avc:  denied  { read")
	f.Add("type=AVC msg=audit(1.000:1): avc:denied{}for a=1")
	f.Add("type=AVC msg=audit(1.000:1): avc: granted {  } for seresult=x seperms={y}")
	f.Add("type=USER_AVC msg=audit(1.000:1): pid=1 msg='avc:  denied  { a=b } for'")
	f.Add("type=1107 msg=audit(1.000:1): msg='avc:  denied  }{ x'")
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
		if r.PlainText() {
			for _, fl := range append(slices.Clone(r.Fields), r.Interp...) {
				texts := []string{fl.Name}
				if fl.Enc == Bare || fl.Enc == Quoted {
					texts = append(texts, fl.Value)
				}
				for _, s := range texts {
					for i := 0; i < len(s); i++ {
						if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
							t.Fatalf("PlainText, but %s=%q holds %q", fl.Name, fl.Value, c)
						}
					}
				}
			}
		}
	})
}
