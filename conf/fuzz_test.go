package conf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any input either parses into a config or gives an *Error
// whose every problem lies inside the file and whose every line names the
// file; the key locator, run on any input, places keys inside the file.
// Nothing panics.
func FuzzParse(f *testing.F) {
	f.Add(Example)
	files, _ := filepath.Glob("testdata/*/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("[[sink]]\ntype = \"kafka\"\n[sink.kafka]\nbrokers = [\"a:1\"]\n"))
	f.Add([]byte("a = \"\"\"x\n]\"\"\"\nb = [\n 1, # c\n]\n[[t]]\n[t.u]\nv = {w = 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		for path, p := range locate(data) {
			if p.Line < 1 || p.Line > lines || p.ValLine < p.Line || p.ValLine > lines || p.Col < 1 || p.ValCol < 1 {
				t.Fatalf("locate: %q at %+v in a text of %d lines", path, p, lines)
			}
		}
		_, err := Parse("fuzz.toml", data)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) == 0 {
			t.Fatalf("error %v is not an *Error with problems", err)
		}
		for _, p := range e.Problems {
			if p.Line < 0 || p.Line > lines {
				t.Fatalf("problem %+v outside a text of %d lines", p, lines)
			}
		}
		for _, l := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(l, "fuzz.toml:") {
				t.Fatalf("error line %q does not start with the file", l)
			}
		}
	})
}
