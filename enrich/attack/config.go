package attack

import (
	"fmt"
	"slices"
	"strings"
)

// Config configures ATT&CK tagging from audit rule keys.
//
// In TOML:
//
//	[attack]
//	enabled = true
//	[attack.key_map]
//	recon = ["T1082", "T1033"]   # replaces the built-in entry for "recon"
//	my_key = ["T1059.004"]       # adds a key
//	power = []                   # removes the built-in entry for "power"
//	T1071 = ["T1556.003"]        # replaces the id written in the key "T1071"
type Config struct {
	// Enabled switches tagging on. Default true. When false, Enrich does
	// nothing.
	Enabled bool `toml:"enabled"`
	// KeyMap maps audit keys to technique ids. It is laid over the
	// built-in map (see DefaultKeyMap): an entry replaces the built-in
	// entry for the same key. Keys are compared, whole, without regard to
	// letter case or surrounding white space. Ids must be in the embedded
	// catalog (revoked ids are accepted and stand for their replacement).
	// Ids written in a key itself ("T1548.001_12") are found without any
	// entry here; an entry for exactly that key replaces them, so that a
	// wrong id in a rule set can be corrected ("T1071" = ["T1556.003"]) or
	// dropped (an empty list: the key gets no technique). Default: empty
	// (built-in map only).
	KeyMap map[string][]string `toml:"key_map"`
}

// DefaultConfig returns the defaults: tagging on, built-in key map only.
func DefaultConfig() Config {
	return Config{Enabled: true}
}

// Validate checks that every KeyMap key is non-empty and unique (ignoring
// letter case), and that every id is a technique of the embedded catalog.
// The error names the offending key.
func (c *Config) Validate() error {
	keys := make([]string, 0, len(c.KeyMap))
	for k := range c.KeyMap {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same error every time
	seen := make(map[string]string, len(keys))
	for _, k := range keys {
		n := normKey(k)
		if n == "" {
			return fmt.Errorf("attack: key_map: empty key %q", k)
		}
		if strings.IndexByte(n, KeySeparator) >= 0 {
			return fmt.Errorf("attack: key_map[%q]: a key cannot contain the 0x01 key separator", k)
		}
		if prev, ok := seen[n]; ok {
			return fmt.Errorf("attack: key_map[%q]: same key as %q (keys ignore letter case)", k, prev)
		}
		seen[n] = k
		for _, id := range c.KeyMap[k] {
			if _, ok := find(strings.TrimSpace(id)); !ok {
				return fmt.Errorf("attack: key_map[%q]: %q is not a technique id of ATT&CK Enterprise %s", k, id, Version)
			}
		}
	}
	return nil
}

// Warnings lists the KeyMap entries that change nothing, for check-config:
// an empty list for a key that carries no technique id and has no built-in
// entry. Each names the key.
func (c *Config) Warnings() []string {
	var out []string
	builtin := mergeKeyMap(nil)
	for k, ids := range c.KeyMap {
		n := normKey(k)
		if len(ids) > 0 {
			continue
		}
		if start, _ := scanID(n, 0); start >= 0 {
			continue
		}
		if _, ok := builtin[n]; ok {
			continue
		}
		out = append(out, fmt.Sprintf("attack: key_map[%q] = [] changes nothing: the key carries no technique id and has no built-in entry", k))
	}
	slices.Sort(out)
	return out
}
