package blocklist

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
)

// The index keeps one table per digest algorithm. A table is an ordered
// open-addressing table: keys sorted, each at or just after its home slot
// (the slot its first four bytes scale to), with free slots between runs.
// Digests are uniformly distributed, so a lookup reads the home slot and
// usually its neighbour or two: one or two cache misses on a table of any
// size. A bit filter over the leading key bits, small enough to stay in
// cache, answers most lookups of absent digests without reading the slots.
// Each key has a uint32 label number; labels are interned, so a 1M-entry
// list of one malware family stores the family name once. The table has 1.25
// slots per key, so with the filter a sha256 entry costs about 47 bytes. An
// index never changes after build, so any number of goroutines may read it.

type (
	md5Key    [16]byte
	sha1Key   [20]byte
	sha256Key [32]byte
	sha512Key [64]byte
)

type key[K any] interface {
	comparable
	compare(K) int
	top() uint32 // the first four bytes, big-endian
}

func (a md5Key) compare(b md5Key) int       { return compareKeys(a[:], b[:]) }
func (a sha1Key) compare(b sha1Key) int     { return compareKeys(a[:], b[:]) }
func (a sha256Key) compare(b sha256Key) int { return compareKeys(a[:], b[:]) }
func (a sha512Key) compare(b sha512Key) int { return compareKeys(a[:], b[:]) }

// compareKeys orders two keys of at least 8 bytes; the first eight decide
// almost always.
func compareKeys(a, b []byte) int {
	if x, y := binary.BigEndian.Uint64(a), binary.BigEndian.Uint64(b); x != y {
		if x < y {
			return -1
		}
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

func (a md5Key) top() uint32    { return binary.BigEndian.Uint32(a[:4]) }
func (a sha1Key) top() uint32   { return binary.BigEndian.Uint32(a[:4]) }
func (a sha256Key) top() uint32 { return binary.BigEndian.Uint32(a[:4]) }
func (a sha512Key) top() uint32 { return binary.BigEndian.Uint32(a[:4]) }

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

var algoBytes = [numAlgos]int{16, 20, 32, 64}

// algoByName maps md5, sha1, sha256 or sha512, in any case, to its algo.
func algoByName(s string) (int, bool) {
	for a, n := range algoNames {
		if strings.EqualFold(n, s) {
			return a, true
		}
	}
	return 0, false
}

// digest is a decoded digest of any supported algorithm.
type digest struct {
	algo int
	b    [64]byte
}

// index is one loaded list. Label 0 is the empty label.
type index struct {
	md5    table[md5Key]
	sha1   table[sha1Key]
	sha256 table[sha256Key]
	sha512 table[sha512Key]
	labels []string
}

// lookup returns the label of d and whether d is in the index.
func (ix *index) lookup(d *digest) (string, bool) {
	var (
		l  uint32
		ok bool
	)
	switch d.algo {
	case algoMD5:
		l, ok = ix.md5.find(md5Key(d.b[:16]))
	case algoSHA1:
		l, ok = ix.sha1.find(sha1Key(d.b[:20]))
	case algoSHA256:
		l, ok = ix.sha256.find(sha256Key(d.b[:32]))
	case algoSHA512:
		l, ok = ix.sha512.find(sha512Key(d.b[:64]))
	}
	if !ok {
		return "", false
	}
	return ix.labels[l], true
}

// counts returns the number of unique digests per algorithm.
func (ix *index) counts() [numAlgos]int {
	return [numAlgos]int{ix.md5.n, ix.sha1.n, ix.sha256.n, ix.sha512.n}
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
	md5      []entry[md5Key]
	sha1     []entry[sha1Key]
	sha256   []entry[sha256Key]
	sha512   []entry[sha512Key]
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

func hinted[K key[K]](s []entry[K], hint *int) []entry[K] {
	if s == nil && *hint > 0 {
		// Room for the free slots buildTable adds, and for the few keys
		// that spill past the last home slot.
		s = make([]entry[K], 0, *hint+*hint/loadSlack+*hint/256+64)
		*hint = 0
	}
	return s
}

func (b *builder) add(d *digest, label uint32) {
	switch d.algo {
	case algoMD5:
		b.md5 = append(hinted(b.md5, &b.lineHint), entry[md5Key]{md5Key(d.b[:16]), label})
	case algoSHA1:
		b.sha1 = append(hinted(b.sha1, &b.lineHint), entry[sha1Key]{sha1Key(d.b[:20]), label})
	case algoSHA256:
		b.sha256 = append(hinted(b.sha256, &b.lineHint), entry[sha256Key]{sha256Key(d.b[:32]), label})
	case algoSHA512:
		b.sha512 = append(hinted(b.sha512, &b.lineHint), entry[sha512Key]{sha512Key(d.b[:64]), label})
	}
}

func (b *builder) build() *index {
	ix := &index{
		md5:    buildTable(b.md5),
		sha1:   buildTable(b.sha1),
		sha256: buildTable(b.sha256),
		sha512: buildTable(b.sha512),
		labels: slices.Clip(b.labels),
	}
	*b = builder{}
	return ix
}

var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

// parseDigest decodes s, a hex digest of 32, 40, 64 or 128 digits (any
// case), optionally prefixed by "md5:", "sha1:", "sha256:" or "sha512:"
// (any case) whose length must then match. It reports false for anything
// else.
func parseDigest[S []byte | string](s S, d *digest) bool {
	hexs := s
	switch len(s) {
	case 32:
		d.algo = algoMD5
	case 40:
		d.algo = algoSHA1
	case 64:
		d.algo = algoSHA256
	case 128:
		d.algo = algoSHA512
	default:
		// "sha512:" is the longest prefix.
		i := 0
		for i < len(s) && i < 8 && s[i] != ':' {
			i++
		}
		if i == len(s) || s[i] != ':' {
			return false
		}
		a, ok := algoByName(string(s[:i]))
		if !ok || len(s)-i-1 != 2*algoBytes[a] {
			return false
		}
		d.algo = a
		hexs = s[i+1:]
	}
	dst := d.b[:len(hexs)/2]
	var bad byte
	for i := range dst {
		hi, lo := unhex[hexs[2*i]], unhex[hexs[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad&0xf0 == 0
}
