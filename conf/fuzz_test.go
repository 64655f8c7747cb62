package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any input either parses into a config that passes Validate,
// or gives an error that names the file; it never panics.
func FuzzParse(f *testing.F) {
	f.Add(Example)
	files, _ := filepath.Glob("testdata/*/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("[[sink]]\ntype = \"kafka\"\n[sink.kafka]\nbrokers = [\"a:1\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := cfg.Validate(data); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}
