package virustotal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// TestAnswersFile: with answers_file, a listed hash gets its stored
// verdict and an unlisted one "not found", without an API key and without
// any request reaching the API host.
func TestAnswersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "answers.json")
	body := `{"` + eicar + `": ` + fixture(t, "file_eicar.json") + `}`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.APIKey, c.AnswersFile = "", path })
	h.enrich(ev(1, fh256(eicar)))
	if v := h.verdict().VirusTotal; v.Status != StatusHit || v.Malicious != 62 || v.ThreatLabel != "virus.eicar/test" {
		t.Fatalf("listed hash: %+v %+v", v, v.VTVerdict)
	}
	h.enrich(ev(2, fh256(sha(7))))
	if v := h.verdict().VirusTotal; v.Status != StatusNotFound {
		t.Fatalf("unlisted hash: %+v", v)
	}
	if n := len(h.fake.Requests()); n != 0 {
		t.Errorf("%d requests reached the API host", n)
	}
}

// TestAnswersFileErrors: a missing or malformed answers file stops New,
// and answers_file excludes an API key.
func TestAnswersFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"ABC": {}}`), 0o644)
	for file, want := range map[string]string{
		filepath.Join(dir, "missing.json"): "no such file",
		bad:                                "is not a lower-case SHA-256",
	} {
		c := DefaultConfig()
		c.Enabled, c.AnswersFile, c.StateDir = true, file, t.TempDir()
		if _, err := New(c, &collector{ch: make(chan *audit.Event, 1)}, nil, &metrics.Registry{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", file, err, want)
		}
	}
	c := DefaultConfig()
	c.Enabled, c.AnswersFile, c.APIKey, c.StateDir = true, bad, "k", dir
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "answers_file") {
		t.Errorf("answers_file with api_key: %v", err)
	}
}
