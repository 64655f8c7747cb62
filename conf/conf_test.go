package conf

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExampleParses(t *testing.T) {
	c, err := Parse("", Example)
	if err != nil {
		t.Fatalf("embedded example: %v", err)
	}
	// The example documents the defaults: it must agree with Defaults().
	d := Defaults()
	if c.Input != d.Input || c.Reassembly != d.Reassembly || c.Log.Level != d.Log.Level || c.Enrich.Workers != d.Enrich.Workers {
		t.Errorf("example differs from Defaults():\n%+v %+v\n%+v %+v", c.Input, c.Reassembly, d.Input, d.Reassembly)
	}
	if c.File != "" {
		t.Errorf("File = %q for the built-in config", c.File)
	}
	if len(c.Sinks) == 0 {
		t.Error("example config has no sink")
	}
	if b := Builtin(); b.Input.Format != "string" || b.Reassembly.EOETimeout != 2*time.Second {
		t.Errorf("Builtin: %+v", b)
	}
}

func TestPackagedConfigParses(t *testing.T) {
	path := filepath.Join("..", "packaging", "config.toml")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("packaging/config.toml: %v", err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("packaged config: %v", err)
	}
	if c.File != path {
		t.Errorf("File = %q, want %q", c.File, path)
	}
}

func TestValidSmallConfig(t *testing.T) {
	data := []byte(`
[input]
format = "binary"

[reassembly]
eoe_timeout = "500ms"

[[sink]]
type = "file"
[sink.file]
path = "/tmp/x.jsonl"
`)
	c, err := Parse("small.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Input.Format != "binary" || c.Input.MaxLineBytes != 64<<10 || c.Reassembly.EOETimeout != 500*time.Millisecond {
		t.Errorf("values %+v %+v (unset keys must keep defaults)", c.Input, c.Reassembly)
	}
	if len(c.Sinks) != 1 || c.Sinks[0].Name != "file" || c.Sinks[0].File.Path != "/tmp/x.jsonl" ||
		c.Sinks[0].File.Keep != DefaultFileConfig().Keep || c.Sinks[0].Encoding != "json" || c.Sinks[0].Line != 8 {
		t.Errorf("sink %+v file %+v", c.Sinks[0], c.Sinks[0].File)
	}
}

var placed = regexp.MustCompile(`^[0-9]+:[0-9]+: `)

// TestInvalidConfigs loads every testdata/invalid/*.toml. Each file starts
// with one "# want: LINE:COL: message" line per problem (or "# want:
// message" for one without a place), in order: the error must be exactly
// those lines, each as FILE:LINE:COL: message.
func TestInvalidConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(files) < 20 {
		t.Fatalf("only %d invalid configs", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				w, ok := strings.CutPrefix(sc.Text(), "# want: ")
				if !ok {
					break
				}
				if placed.MatchString(w) {
					want = append(want, path+":"+w)
				} else {
					want = append(want, path+": "+w)
				}
			}
			if len(want) == 0 {
				t.Fatal("no # want: header")
			}
			_, err = Load(path)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error is a %T, not an *Error", err)
			}
		})
	}
}

// TestLoadUnreadable: a file that cannot be read gives "PATH: reason".
func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "nope.toml"))
	if err == nil || err.Error() != filepath.Join(dir, "nope.toml")+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	_, err = Load(dir)
	if err == nil || err.Error() != dir+": is a directory" {
		t.Errorf("directory: %v", err)
	}
}

// TestClosest: typos get a suggestion, unrelated words none.
func TestClosest(t *testing.T) {
	for _, tc := range []struct{ word, want string }{
		{"levle", "level"}, {"fromat", "format"}, {"strng", "string"}, {"jsno", "json"},
		{"FORMAT", "format"}, {"carrier-pigeon", ""}, {"xml", ""}, {"tcp", ""},
	} {
		if got := closest(tc.word, []string{"level", "format", "string", "json", "udp"}); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

// TestLocate: keys are placed under their table, array elements by index,
// dotted keys and keys after multi-line values at their own line.
func TestLocate(t *testing.T) {
	data := []byte(`top = 1
[a]
b.c = """x
y = 2
"""
list = [
  "z", # ]
]
d = 'q'
[[s]]
t = 1
[[s]]
t = {u = 1}
[s.v]
w = "#"
`)
	loc := locate(data)
	for path, want := range map[string]pos{
		"top": {1, 1, 1, 7}, "a": {2, 1, 2, 1}, "a.b.c": {3, 1, 3, 7}, "a.list": {6, 1, 6, 8}, "a.d": {9, 1, 9, 5},
		"s[0]": {10, 1, 10, 1}, "s[0].t": {11, 1, 11, 5}, "s[1].t": {13, 1, 13, 5}, "s[1].v": {14, 1, 14, 1}, "s[1].v.w": {15, 1, 15, 5},
	} {
		if got := loc[path]; got != want {
			t.Errorf("%s at %+v, want %+v", path, got, want)
		}
	}
	if _, ok := loc["a.y"]; ok {
		t.Error("a key inside a multi-line string was recorded")
	}
	if p, _ := loc.at("s[1].t.u"); p.Line != 13 {
		t.Errorf("inline table key at %+v, want line 13", p)
	}
	if p, _ := loc.at("s[1].file.path"); p.Line != 12 {
		t.Errorf("missing key of s[1] at %+v, want its header, line 12", p)
	}
}

// TestKeepStateDir: a config read again for a reload that changes
// state_dir keeps the started one, and so do the enrichers' state
// directories that follow it; one set elsewhere stays where it is set.
func TestKeepStateDir(t *testing.T) {
	c, err := Parse("reload.toml", []byte("state_dir = \"/var/lib/new\"\n[enrich.packages]\nstate_dir = \"/srv/pkg\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.KeepStateDir("/var/lib/audisp-enrich")
	if c.Enrich.VirusTotal.StateDir != "/var/lib/audisp-enrich" || c.Enrich.Fleet.StateDir != "/var/lib/audisp-enrich" {
		t.Errorf("virustotal %q, fleet %q: want the started state_dir", c.Enrich.VirusTotal.StateDir, c.Enrich.Fleet.StateDir)
	}
	if c.Enrich.Packages.StateDir != "/srv/pkg" {
		t.Errorf("packages %q: want the directory set for it", c.Enrich.Packages.StateDir)
	}
}
