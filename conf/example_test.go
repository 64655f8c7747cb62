package conf

import (
	"strings"
	"testing"
)

// exampleBlocks returns the commented "--- example: NAME ---" blocks of
// the example config, uncommented.
func exampleBlocks(t *testing.T) map[string]string {
	t.Helper()
	blocks := map[string]string{}
	name := ""
	var cur []string
	for _, l := range strings.Split(string(Example), "\n") {
		switch {
		case strings.HasPrefix(l, "# --- example: "):
			name = strings.TrimSuffix(strings.TrimPrefix(l, "# --- example: "), " ---")
			cur = nil
		case l == "# --- end ---":
			blocks[name] = strings.Join(cur, "\n") + "\n"
			name = ""
		case name != "":
			if strings.HasPrefix(l, "# # ") || strings.HasPrefix(l, "#  ") {
				continue // prose inside the block
			}
			cur = append(cur, strings.TrimPrefix(l, "# "))
		}
	}
	return blocks
}

// TestExampleBlocksParse: every commented example in the printed default
// config is valid once uncommented, so the documentation cannot drift from
// the code.
func TestExampleBlocksParse(t *testing.T) {
	blocks := exampleBlocks(t)
	for _, want := range []string{"blocklist", "hunt rule", "file sink", "kafka sink", "syslog sink", "gelf sink", "remote auditd sink", "verdict service", "fleet host"} {
		if blocks[want] == "" {
			t.Errorf("example block %q missing", want)
		}
	}
	for name, b := range blocks {
		// Sections that open a new table must come after the base config;
		// the blocklist and hunt examples extend tables of the base.
		cfg := string(Example) + "\n" + b
		if _, err := Parse("example+"+name, []byte(cfg)); err != nil {
			t.Errorf("example %q does not parse: %v\n%s", name, err, b)
		}
	}
}

// TestExampleStateDirFollows: a config made from the printed default
// config with only the top-level state_dir changed keeps every state
// directory under it (the sections' own state_dir lines are comments).
func TestExampleStateDirFollows(t *testing.T) {
	data := strings.Replace(string(Example), "\nstate_dir = \"/var/lib/audisp-enrich\"\n", "\nstate_dir = \"/srv/ae\"\n", 1)
	c, err := Parse("moved.toml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/srv/ae" {
		t.Fatalf("state_dir = %q: the example's top-level line was not replaced", c.StateDir)
	}
	for name, dir := range map[string]string{"virustotal": c.Enrich.VirusTotal.StateDir,
		"packages": c.Enrich.Packages.StateDir, "fleet": c.Enrich.Fleet.StateDir} {
		if dir != "/srv/ae" {
			t.Errorf("[enrich.%s] state_dir = %q, want the top-level /srv/ae", name, dir)
		}
	}
}
