package hunt

import (
	"hash/maphash"
	"path"
	"strings"
	"sync/atomic"
)

// exeCacheSize is the number of executables exeCache remembers (a power of
// two). Hosts run a few hundred distinct programs; a collision only costs
// the recomputation.
const exeCacheSize = 1024

// exeCache remembers, for recently seen executable paths as the record
// wrote them, the clean path and its facts (exeFacts), so that an exec of
// a known program costs a hash and a compare instead of a path.Clean,
// three directory tests and every rule's exe conditions. It is direct-mapped and lock-free:
// each cell holds an immutable entry that a lookup reads with one atomic
// load and a miss replaces. Safe for concurrent use; entries own their
// strings, so they pin no event's lines.
type exeCache struct {
	seed  maphash.Seed
	cells [exeCacheSize]atomic.Pointer[exeEntry]
}

type exeEntry struct {
	raw   string // the path as the record had it
	clean string // path.Clean(raw)
	facts exeFacts
}

func newExeCache() *exeCache { return &exeCache{seed: maphash.MakeSeed()} }

// lookup returns the clean form of the absolute path raw and its facts
// under e's directory sets.
func (c *exeCache) lookup(raw string, e *Enricher) (string, exeFacts) {
	cell := &c.cells[maphash.String(c.seed, raw)&(exeCacheSize-1)]
	if x := cell.Load(); x != nil && x.raw == raw {
		return x.clean, x.facts
	}
	raw = strings.Clone(raw)
	clean := path.Clean(raw)
	x := &exeEntry{raw: raw, clean: clean, facts: exeFacts{
		base: path.Base(clean), inTemp: e.temp.under(clean), hidden: hidden(clean), system: e.system.under(clean),
	}}
	for i, r := range e.rules[:min(len(e.rules), 64)] {
		if r.hasExeConds && r.exeHolds(clean, &x.facts) {
			x.facts.rules |= 1 << i
		}
	}
	cell.Store(x)
	return x.clean, x.facts
}
