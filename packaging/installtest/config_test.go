package installtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
)

// TestPackagedConfig checks the packaged default: it loads, has exactly
// the local file sink, ATT&CK, hunting and package trust on, VirusTotal
// off; and the
// commented Kafka, syslog and remote examples are valid once uncommented.
func TestPackagedConfig(t *testing.T) {
	path := filepath.Join(repoRoot(t), "packaging", "config.toml")
	c, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sinks) != 1 || c.Sinks[0].Type != "file" || c.Sinks[0].File.Path != eventsFile ||
		c.Sinks[0].File.MaxBytes <= 0 || c.Sinks[0].File.Keep < 1 || c.Sinks[0].File.Mode != 0o640 {
		t.Errorf("sinks %+v: want one rotated file sink to %s, mode 0640", c.Sinks, eventsFile)
	}
	if !c.Enrich.Attack.Enabled || !c.Enrich.Hunt.Enabled || !c.Enrich.Packages.Enabled || c.Enrich.VirusTotal.Enabled {
		t.Errorf("attack %v hunt %v packages %v virustotal %v: want on, on, on, off", c.Enrich.Attack.Enabled,
			c.Enrich.Hunt.Enabled, c.Enrich.Packages.Enabled, c.Enrich.VirusTotal.Enabled)
	}
	if c.User != serviceUser || c.StateDir != stateDir || c.Input.Format != "string" {
		t.Errorf("user %q state_dir %q format %q", c.User, c.StateDir, c.Input.Format)
	}

	// Uncomment every line after "# Kafka (off)" except the prose headings.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	on := false
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "# Kafka (off)") {
			on = true
		}
		if on && strings.HasPrefix(l, "# ") {
			rest := strings.TrimPrefix(l, "# ")
			if strings.HasPrefix(rest, "[") || strings.Contains(rest, " = ") {
				l = strings.Replace(rest, `"..."`, `"secret"`, 1)
			}
		}
		out = append(out, l)
	}
	c, err = conf.Parse("config.toml with the examples uncommented", []byte(strings.Join(out, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, s := range c.Sinks {
		types = append(types, s.Type)
	}
	if got := strings.Join(types, ","); got != "file,kafka,syslog,remote" {
		t.Errorf("sinks with the examples: %s, want file,kafka,syslog,remote", got)
	}
}
