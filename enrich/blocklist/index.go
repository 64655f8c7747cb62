package blocklist

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/enrich/digesttag"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// The index keeps one table per digest algorithm. A table is an ordered
// open-addressing table: keys sorted, each at or just after its home slot
// (the slot its first four bytes scale to), with free slots between runs.
// Digests are uniformly distributed, so a lookup reads the home slot and
// usually its neighbour or two: one or two cache misses on a table of any
// size. A bit filter over the leading key bits, small enough to stay in
// cache, answers most lookups of absent digests without reading the slots.
//
// A key is a 64-bit keyed tag of the whole digest (fpKey, digesttag with a
// per-process secret key), not the whole digest: a slot is 12 bytes, so a
// 1M-entry table (15 MB) stays in a server's last level cache and a hit
// costs a cache access, not a memory access. Two different digests get
// the same tag with probability 2^-64 however they were chosen (a raw
// prefix would let a file be crafted to match a listed digest's first 8
// bytes, an allow-list entry's included), so with n listed digests a
// lookup reports a false hit with probability n·2^-64 (about 5e-14 for a
// million entries); duplicates are merged the same way.
//
// Each key has a uint32 label number; labels are interned, so a 1M-entry
// list of one malware family stores the family name once. The table has 1.25
// slots per key, so with the filter an entry costs about 17 bytes whatever
// the algorithm. An index never changes after build, so any number of
// goroutines may read it.

// fpKey is a digest's tag (tagKey), big-endian.
type fpKey [8]byte

// tagKey keys the digest tags (per process).
var tagKey = digesttag.New()

type key[K any] interface {
	comparable
	compare(K) int
	top() uint32 // the first four bytes, big-endian
}

func (a fpKey) compare(b fpKey) int {
	return cmp.Compare(binary.BigEndian.Uint64(a[:]), binary.BigEndian.Uint64(b[:]))
}

func (a fpKey) top() uint32 { return binary.BigEndian.Uint32(a[:4]) }

type entry[K key[K]] struct {
	k     K
	label uint32
}

// freeSlot is the label of an empty slot.
const freeSlot = ^uint32(0)

type table[K key[K]] struct {
	// slots are in key order, with free slots between. A key at slot p
	// has home(key) <= p, and every slot from its home to p is taken.
	slots []entry[K]
	n     int    // keys
	homes uint64 // number of home slots
	// filter has a bit set for the leading filterBits bits of every key;
	// about 16 bits per key (2 bytes), so it stays in cache and an absent
	// digest (the usual case) is ruled out 15 times in 16 without touching
	// the slots.
	filter     []uint64
	filterBits uint8
}

const (
	filterBitsPerKey = 16
	minFilterBits    = 6 // one word
	maxFilterBits    = 28
)

func (t *table[K]) mayHave(k K) bool {
	b := k.top() >> (32 - t.filterBits)
	return t.filter[b>>6]&(1<<(b&63)) != 0
}

func (t *table[K]) home(k K) int { return int(uint64(k.top()) * t.homes >> 32) }

// slotsPerKey is 1 + 1/loadSlack: 1.25 slots per key.
const loadSlack = 4

// buildTable sorts and deduplicates ents (taking ownership; capacity for
// 1.25 times its length saves a copy) and lays them out. Of duplicate keys
// one is kept: one with a label if any, and of those the lowest label
// number, which is the label that occurs first in the file (labels are
// numbered as they are first met).
func buildTable[K key[K]](ents []entry[K]) table[K] {
	slices.SortFunc(ents, func(a, b entry[K]) int {
		if c := a.k.compare(b.k); c != 0 {
			return c
		}
		return cmp.Compare(a.label-1, b.label-1) // label 0 (none) wraps to last
	})
	ents = slices.CompactFunc(ents, func(a, b entry[K]) bool { return a.k == b.k })
	n := len(ents)
	if n == 0 {
		return table[K]{}
	}
	t := table[K]{n: n, homes: uint64(n + n/loadSlack + 1)}
	pos := make([]uint32, n)
	last := -1
	for i := range ents {
		p := max(t.home(ents[i].k), last+1)
		pos[i] = uint32(p)
		last = p
	}
	size := max(int(t.homes), last+1)
	ents = slices.Grow(ents, size-n)[:size]
	for i := n; i < size; i++ {
		ents[i] = entry[K]{label: freeSlot}
	}
	// pos[i] >= i, so moving from the end never overwrites a key not yet moved.
	for i := n - 1; i >= 0; i-- {
		e := ents[i]
		ents[i].label = freeSlot
		ents[pos[i]] = e
	}
	if cap(ents)-len(ents) > len(ents)/8 {
		ents = append(make([]entry[K], 0, len(ents)), ents...)
	}
	t.slots = ents
	t.filterBits = minFilterBits
	for t.filterBits < maxFilterBits && 1<<t.filterBits < filterBitsPerKey*n {
		t.filterBits++
	}
	t.filter = make([]uint64, 1<<t.filterBits/64)
	for i := range ents {
		if ents[i].label != freeSlot {
			b := ents[i].k.top() >> (32 - t.filterBits)
			t.filter[b>>6] |= 1 << (b & 63)
		}
	}
	return t
}

func (t *table[K]) find(k K) (uint32, bool) {
	if t.n == 0 || !t.mayHave(k) {
		return 0, false
	}
	for i := t.home(k); i < len(t.slots); i++ {
		e := &t.slots[i]
		if e.label == freeSlot {
			return 0, false
		}
		if e.k == k {
			return e.label, true
		}
		if e.k.compare(k) > 0 {
			return 0, false
		}
	}
	return 0, false
}

// Digest algorithms, in the order of index.tables.
const (
	algoMD5 = iota
	algoSHA1
	algoSHA256
	algoSHA512
	numAlgos
)

var algoNames = [numAlgos]string{"md5", "sha1", "sha256", "sha512"}

// algoByName maps md5, sha1, sha256 or sha512, in any case, to its algo.
func algoByName(s string) (int, bool) {
	for a, n := range algoNames {
		if strings.EqualFold(n, s) {
			return a, true
		}
	}
	return 0, false
}

// digest is a decoded digest of any supported algorithm, with its tag.
type digest struct {
	algo int
	b    [64]byte
	k    fpKey
}

// index is one loaded list. Label 0 is the empty label.
type index struct {
	tables [numAlgos]table[fpKey] // by algo
	labels []string
}

// lookup returns the label of d and whether d is in the index.
func (ix *index) lookup(d *digest) (string, bool) {
	l, ok := ix.tables[d.algo].find(d.k)
	if !ok {
		return "", false
	}
	return ix.labels[l], true
}

// counts returns the number of unique digests per algorithm.
func (ix *index) counts() [numAlgos]int {
	var c [numAlgos]int
	for a := range ix.tables {
		c[a] = ix.tables[a].n
	}
	return c
}

func (ix *index) len() int {
	n := 0
	for _, c := range ix.counts() {
		n += c
	}
	return n
}

// builder collects entries while a file is parsed.
type builder struct {
	ents     [numAlgos][]entry[fpKey] // by algo
	labels   []string
	labelIdx map[string]uint32
	// lineHint, when positive, is the expected number of digest lines; the
	// first table that receives an entry is sized for it, which saves the
	// doubling copies on large single-algorithm lists.
	lineHint int
}

func newBuilder(lineHint int) *builder {
	return &builder{labels: []string{""}, labelIdx: map[string]uint32{"": 0}, lineHint: lineHint}
}

// label interns s.
func (b *builder) label(s []byte) uint32 {
	if i, ok := b.labelIdx[string(s)]; ok {
		return i
	}
	i := uint32(len(b.labels))
	str := string(s)
	b.labels = append(b.labels, str)
	b.labelIdx[str] = i
	return i
}

func (b *builder) add(d *digest, label uint32) {
	s := b.ents[d.algo]
	if s == nil && b.lineHint > 0 {
		// Room for the free slots buildTable adds, and for the few keys
		// that spill past the last home slot.
		h := b.lineHint
		s = make([]entry[fpKey], 0, h+h/loadSlack+h/256+64)
		b.lineHint = 0
	}
	b.ents[d.algo] = append(s, entry[fpKey]{d.k, label})
}

func (b *builder) build() *index {
	ix := &index{labels: slices.Clip(b.labels)}
	for a := range b.ents {
		ix.tables[a] = buildTable(b.ents[a])
	}
	*b = builder{}
	return ix
}

// listAlgo maps the algorithms the lists hold to theirs.
var listAlgo = [...]int{audit.MD5: algoMD5, audit.SHA1: algoSHA1, audit.SHA256: algoSHA256, audit.SHA512: algoSHA512,
	audit.NoDigest: -1, audit.SHA224: -1, audit.SHA384: -1}

// parseDigest decodes s, a digest as audit.SplitDigest defines it (bare hex
// whose length gives the algorithm, or "algo:hex"; either case) of one of
// the algorithms the lists hold: md5, sha1, sha256, sha512. It reports
// false for anything else, sha224 and sha384 included.
func parseDigest[S []byte | string](s S, d *digest) bool {
	a, hexs, ok := audit.SplitDigest(s)
	if !ok || listAlgo[a] < 0 {
		return false
	}
	n, ok := digesttag.Decode(d.b[:], hexs)
	if !ok {
		return false
	}
	d.algo = listAlgo[a]
	d.setKey(n)
	return true
}

// setKey sets d.k from the first n bytes of d.b, the raw digest.
func (d *digest) setKey(n int) { binary.BigEndian.PutUint64(d.k[:], tagKey.Sum(d.b[:n])) }
