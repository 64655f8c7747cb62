package imatest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// Guest paths of the plugin's files.
const (
	guestConfig      = "/etc/audisp-enrich/config.toml"
	guestBlocklist   = "/etc/audisp-enrich/imatest-blocklist.txt"
	guestEvents      = "/var/log/audisp-enrich/events.jsonl"
	guestParseErrors = "/var/log/audisp-enrich/parse-errors.log"
	// The key map entry the test adds: scenario 7's watch key.
	testKey       = "imatest_user"
	testKeyTechID = "T1078.003"
)

// packagedConfig returns the default config the package installs, and its
// path: a config.toml under packaging/ when the packaging ships one, else
// the built-in default conf/example.toml.
func packagedConfig(root string) ([]byte, string, error) {
	var found string
	filepath.WalkDir(filepath.Join(root, "packaging"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "config.toml" && found == "" {
			found = p
		}
		return nil
	})
	if found == "" {
		found = filepath.Join(root, "conf", "example.toml")
	}
	b, err := os.ReadFile(found)
	return b, found, err
}

// guestPluginConfig lays the test's settings over the packaged default:
// an enricher timeout fit for an emulated guest, a plain blocklist
// holding the dropper's hash, a key map entry, the log
// to syslog plus a parse-error file, and one file sink instead of the
// default sinks. Everything else stays as packaged.
func guestPluginConfig(packaged []byte) ([]byte, error) {
	var m map[string]any
	if _, err := toml.Decode(string(packaged), &m); err != nil {
		return nil, fmt.Errorf("packaged config: %w", err)
	}
	table := func(parent map[string]any, key string) map[string]any {
		t, ok := parent[key].(map[string]any)
		if !ok {
			t = map[string]any{}
			parent[key] = t
		}
		return t
	}
	log := table(m, "log")
	log["syslog"] = true
	log["parse_errors"] = guestParseErrors
	enrich := table(m, "enrich")
	// The guest runs under TCG emulation on one virtual CPU, many times
	// slower than the host and slower still when the host is busy: the
	// packaged 100 ms per call would time the emulator, not the plugin
	// (a CI simulation on a loaded host once saw s11's chain take 885 ms
	// and warn). Enricher errors still show as warnings, which the test
	// refuses.
	enrich["timeout"] = "5s"
	bl := table(enrich, "blocklist")
	bl["enabled"] = true
	bl["lists"] = []map[string]any{{
		"name": testBlocklist, "path": guestBlocklist, "kind": "block", "format": "plain",
	}}
	at := table(enrich, "attack")
	at["enabled"] = true
	km := table(at, "key_map")
	km[testKey] = []string{testKeyTechID}
	m["sink"] = []map[string]any{{
		"name": "imatest", "type": "file", "encoding": "json",
		"file": map[string]any{"path": guestEvents},
	}}
	var b bytes.Buffer
	b.WriteString("# The packaged default config with the IMA test's settings laid over it.\n")
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// guestBlocklistFile is the test blocklist in the plain (sha256sum) format.
func guestBlocklistFile(g *guestFiles) []byte {
	return []byte("# IMA test blocklist\n" + sha256hex(g.dropper) + "  dropper\n")
}
