package conf

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Errorf("missing file: %v", err)
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

var lineRef = regexp.MustCompile(`(:|line )([0-9]+)\b`)

// TestInvalidConfigs loads every testdata/invalid/*.toml. Each file starts
// with "# want: <substring>"; the error must contain it, name the file, and
// name a line (file:N or "line N", N > 0). A "# line: N" header pins N.
func TestInvalidConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(files) < 10 {
		t.Fatalf("only %d invalid configs", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, wantLine := "", 0
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				l := sc.Text()
				if s, ok := strings.CutPrefix(l, "# want: "); ok {
					want = strings.TrimSpace(s)
				} else if s, ok := strings.CutPrefix(l, "# line: "); ok {
					wantLine, _ = strconv.Atoi(s)
				} else if !strings.HasPrefix(l, "# want:") {
					break
				}
			}
			if !bytes.HasPrefix(data, []byte("# want:")) {
				t.Fatal("no # want: header")
			}
			_, err = Load(path)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not contain %q", msg, want)
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file %s", msg, path)
			}
			m := lineRef.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("error %q names no line", msg)
			}
			n, _ := strconv.Atoi(m[2])
			if n < 2 || n > bytes.Count(data, []byte("\n"))+1 {
				t.Errorf("error %q names line %d; the file has the header on line 1 and %d lines", msg, n, bytes.Count(data, []byte("\n")))
			}
			if wantLine > 0 && n != wantLine {
				t.Errorf("error %q names line %d, want %d", msg, n, wantLine)
			}
		})
	}
}
