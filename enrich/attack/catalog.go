package attack

//go:generate go run ./gen

import (
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// tacticSet is a bit set over the tactics table (bit i is tactics[i]).
type tacticSet uint16

// rowFlag marks revoked and deprecated catalog rows.
type rowFlag uint8

const (
	revoked rowFlag = 1 << iota
	deprecated
)

// row is one technique of the generated catalog.
type row struct {
	id         string
	name       string
	tactics    tacticSet
	flags      rowFlag
	replacedBy string
}

// tacticRow is one tactic of the generated catalog.
type tacticRow struct {
	id, name string
}

const (
	techniqueURL = "https://attack.mitre.org/techniques/"
	tacticURL    = "https://attack.mitre.org/tactics/"
)

// The lookup tables below are built once at package initialisation from the
// generated catalog and never change afterwards, so they are safe for
// concurrent reads without locking.
var (
	// techs[i] is the ready-made technique of catalog[i]; Source is empty and
	// the Tactics slices are shared between techniques.
	techs [len(catalog)]audit.Technique
	// final[i] is the index of the technique catalog[i] stands for: itself,
	// or its replacement when revoked.
	final [len(catalog)]int32
	// byID maps a canonical id ("T1059.004") to its catalog index.
	byID = make(map[string]int32, len(catalog))
	// tacticByName maps a tactic's short name ("command-and-control") to
	// the tactic.
	tacticByName = make(map[string]audit.Tactic, len(tactics))
)

func init() {
	for _, t := range tactics {
		short := strings.ReplaceAll(strings.ToLower(t.name), " ", "-")
		tacticByName[short] = audit.Tactic{ID: t.id, Name: t.name, Reference: tacticURL + t.id + "/"}
	}
	for i := range catalog {
		byID[catalog[i].id] = int32(i)
	}
	sets := map[tacticSet][]audit.Tactic{}
	for i := range catalog {
		r := &catalog[i]
		t := &techs[i]
		t.ID = r.id
		t.Name = r.name
		t.Reference = techniqueURL + strings.Replace(r.id, ".", "/", 1) + "/"
		if len(r.id) > 5 {
			t.ParentID = r.id[:5]
			t.Parent = catalog[byID[t.ParentID]].name
		}
		ts, ok := sets[r.tactics]
		if !ok {
			for j := range tactics {
				if r.tactics&(1<<j) != 0 {
					ts = append(ts, audit.Tactic{ID: tactics[j].id, Name: tactics[j].name, Reference: tacticURL + tactics[j].id + "/"})
				}
			}
			// Cap the slice so that an append by a consumer copies
			// instead of writing into the shared array.
			ts = ts[:len(ts):len(ts)]
			sets[r.tactics] = ts
		}
		t.Tactics = ts
		final[i] = int32(i)
		if r.flags&revoked != 0 {
			final[i] = byID[r.replacedBy]
		}
	}
}

// find returns the catalog index of a technique id given in any letter
// case ("T1059.004", "t1059.004"), without following revocations. It does
// not allocate.
func find(id string) (int32, bool) {
	if len(id) != 5 && len(id) != 9 {
		return 0, false
	}
	if id[0] == 't' {
		var buf [9]byte
		n := copy(buf[:], id)
		buf[0] = 'T'
		i, ok := byID[string(buf[:n])]
		return i, ok
	}
	i, ok := byID[id]
	return i, ok
}

// Lookup returns the ATT&CK technique with the given id ("T1059" or
// "T1059.004", any letter case, surrounding white space ignored) from the
// embedded catalog. A revoked id yields its replacement, so the returned ID
// may differ from the one asked for; a deprecated id yields the deprecated
// technique itself. ok is false for ids the catalog does not hold.
//
// The result has Name, Reference, ParentID/Parent (sub-techniques) and
// Tactics filled in and Source empty. Its Tactics slice is shared with
// other results: callers must not modify its elements. Lookup is safe for
// concurrent use and does not allocate.
func Lookup(id string) (audit.Technique, bool) {
	i, ok := find(strings.TrimSpace(id))
	if !ok {
		return audit.Technique{}, false
	}
	return techs[final[i]], true
}

// TacticByName returns the tactic whose short name, as ATT&CK writes it in
// its data and Sigma in its tags, is name ("execution",
// "command-and-control"; lower case). ok is false for names the catalog
// does not hold. It is safe for concurrent use.
func TacticByName(name string) (audit.Tactic, bool) {
	t, ok := tacticByName[name]
	return t, ok
}
