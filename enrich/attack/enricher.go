// Package attack tags audit events with MITRE ATT&CK Enterprise techniques
// found in their rule keys.
//
// A key names techniques in two ways: by id inside the key ("T1548.001_12",
// "Deobfuscate_T1140", see ParseKey), or through a key map for free-form
// keys ("recon" → T1082, T1033; see DefaultKeyMap and Config.KeyMap). Each
// technique comes from an embedded catalog generated from ATT&CK (Version)
// with its name, URL, parent and tactics. Revoked ids stand for their
// replacement; ids the catalog lacks are counted and logged, not tagged.
package attack

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// maxCachedKeys bounds the per-key cache. Rule sets have a few hundred
// keys; keys past the bound are resolved again on every event.
const maxCachedKeys = 1024

// Enricher adds the techniques named by an event's rule keys to
// ev.Techniques. It is safe for concurrent use.
type Enricher struct {
	enabled bool
	// keyMap is the merged key map, keyed by normKey, with catalog
	// indices already resolved (revocations followed, no repeats).
	keyMap map[string][]int32

	// cache maps a key (trimmed, as written) to its resolved techniques.
	// It is copy-on-write: readers load the pointer without locking,
	// writers hold mu and publish a new map.
	cache atomic.Pointer[map[string]*keyInfo]
	mu    sync.Mutex

	techniquesTotal, unknownTotal, deprecatedTotal *metrics.Counter
}

// keyInfo is what one key resolves to.
type keyInfo struct {
	key        string            // as written, white space trimmed
	techs      []audit.Technique // Source is "key:<key>"
	unknown    uint64            // ids in the key that the catalog lacks
	deprecated uint64            // deprecated ids in the key
}

var _ enrich.Enricher = (*Enricher)(nil)

// New validates cfg and returns an Enricher for it. Its counters are
// registered in reg (nil: metrics.Default); enrichers built later with the
// same registry (a reload) continue them.
func New(cfg Config, reg *metrics.Registry) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		reg = metrics.Default
	}
	e := &Enricher{enabled: cfg.Enabled, keyMap: map[string][]int32{},
		techniquesTotal: reg.Counter("audisp_enrich_attack_techniques_total", "",
			"ATT&CK techniques attached to events from rule keys."),
		unknownTotal: reg.Counter("audisp_enrich_attack_unknown_ids_total", "",
			"Technique ids in rule keys that the embedded ATT&CK catalog does not hold (not tagged)."),
		deprecatedTotal: reg.Counter("audisp_enrich_attack_deprecated_ids_total", "",
			"Deprecated ATT&CK technique ids in rule keys (tagged as they are)."),
	}
	for k, ids := range mergeKeyMap(cfg.KeyMap) {
		var idx []int32
		for _, id := range ids {
			i, ok := find(strings.TrimSpace(id))
			if !ok {
				// Validate checked cfg.KeyMap; the built-in map is
				// checked by the package tests.
				continue
			}
			idx = appendUnique(idx, final[i])
		}
		e.keyMap[k] = idx // nil: the key gets no technique
	}
	e.cache.Store(&map[string]*keyInfo{})
	return e, nil
}

// Name returns "attack".
func (e *Enricher) Name() string { return "attack" }

// Enrich reads the key= field of every record of ev (0x01-separated keys
// included; "(null)" ignored) and appends the techniques the keys name to
// ev.Techniques, in key order, skipping any technique (by ID) that
// ev.Techniques already holds. Source is "key:<key>" with the key as
// written, white space trimmed.
//
// CONFIG_CHANGE records are skipped: their key is that of a rule being
// added or removed, not of a rule that matched. Documents other than audit
// events (verdicts, alerts) are left alone, as is everything when the
// Enricher is disabled. Enrich never blocks and never fails; once a key has
// been seen it allocates only when a second key adds techniques (the first
// key's resolved slice is shared, read-only, by every event that has it).
func (e *Enricher) Enrich(_ context.Context, ev *audit.Event) error {
	if !e.enabled || ev == nil || ev.Kind != audit.KindAudit {
		return nil
	}
	for _, k := range audit.SummaryOf(ev).Keys {
		k = strings.TrimSpace(k)
		if k == "" || k == "(null)" {
			continue
		}
		ki := e.lookupKey(k)
		if ki.unknown > 0 {
			e.unknownTotal.Add(ki.unknown)
		}
		if ki.deprecated > 0 {
			e.deprecatedTotal.Add(ki.deprecated)
		}
		if len(ev.Techniques) == 0 {
			// The usual case shares the key's resolved slice; its
			// capacity is its length, so a later append copies it.
			ev.Techniques = ki.techs
			e.techniquesTotal.Add(uint64(len(ki.techs)))
			continue
		}
		ev.Techniques = slices.Grow(ev.Techniques, len(ki.techs))
		for i := range ki.techs {
			if !hasTechnique(ev.Techniques, ki.techs[i].ID) {
				ev.Techniques = append(ev.Techniques, ki.techs[i])
				e.techniquesTotal.Inc()
			}
		}
	}
	return nil
}

// lookupKey returns what key resolves to, from the cache when possible.
func (e *Enricher) lookupKey(key string) *keyInfo {
	if ki, ok := (*e.cache.Load())[key]; ok {
		return ki
	}
	ki := e.resolve(strings.Clone(key))
	e.mu.Lock()
	defer e.mu.Unlock()
	old := *e.cache.Load()
	if prev, ok := old[key]; ok {
		return prev // another goroutine got there first
	}
	if len(old) < maxCachedKeys {
		m := make(map[string]*keyInfo, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[ki.key] = ki
		e.cache.Store(&m)
	}
	return ki
}

// resolve works out the techniques of key: the key map entry for exactly
// this key (letter case aside) when there is one, in place of the ids
// written in the key; else those ids. Unknown and deprecated ids are logged
// here, so once per distinct key while the cache has room.
func (e *Enricher) resolve(key string) *keyInfo {
	ki := &keyInfo{key: key}
	idx, mapped := e.keyMap[normKey(key)]
	if !mapped {
		idx = e.parseIDs(key, ki)
	}
	if len(idx) > 0 {
		src := "key:" + key
		ki.techs = make([]audit.Technique, len(idx))
		for j, c := range idx {
			ki.techs[j] = techs[c]
			ki.techs[j].Source = src
		}
	}
	return ki
}

// parseIDs returns the catalog entries of the technique ids written in key
// (revoked ids as their replacement), counting unknown and deprecated ones
// in ki.
func (e *Enricher) parseIDs(key string, ki *keyInfo) []int32 {
	var idx []int32
	for i := 0; ; {
		start, end := scanID(key, i)
		if start < 0 {
			break
		}
		i = end
		id := key[start:end]
		c, ok := find(id)
		if !ok {
			ki.unknown++
			slog.Warn("attack: technique id in audit key is not in the ATT&CK catalog; not tagged",
				"key", key, "id", id, "attack_version", Version)
			continue
		}
		if catalog[c].flags&deprecated != 0 {
			ki.deprecated++
			slog.Warn("attack: audit key names a deprecated ATT&CK technique",
				"key", key, "id", catalog[c].id)
		}
		if catalog[c].flags&revoked != 0 {
			slog.Debug("attack: audit key names a revoked ATT&CK technique; using its replacement",
				"key", key, "id", catalog[c].id, "replacement", catalog[c].replacedBy)
		}
		idx = appendUnique(idx, final[c])
	}
	return idx
}

func appendUnique(s []int32, v int32) []int32 {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func hasTechnique(ts []audit.Technique, id string) bool {
	for i := range ts {
		if ts[i].ID == id {
			return true
		}
	}
	return false
}
