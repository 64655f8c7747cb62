package fleet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// verdictCache is the host's bounded cache of fleet verdicts: about 12.6
// bytes a verdict, 30 to 60 more for a hit. It keeps what an event's
// virustotal field shows (result) and nothing else: the source, the
// engine total, the lookup time and the names of skipped verdicts are in
// the verdict document only, and the Link of a hit is rebuilt from the
// digest.
//
// Layout: an open-addressed table (table: Robin Hood linear probing,
// deletion by backward shift) of 12-byte slots, a tag and a word. The
// tag is a keyed 64-bit MAC of the digest (AES-128 CBC-MAC over the
// raw digest, one random key per digest length, drawn when the cache is
// made and never leaving the process), so an attacker who cannot read the
// process memory cannot aim a file at another file's tag; an accidental
// tag collision has probability about n/2^64 per look-up of an unknown
// digest (docs/fleet.md). The word packs a CLOCK reference bit, the
// entry's kind and either the whole verdict (statuses other than hit:
// status, reason, expiry in 16-second units) or the index of a 24-byte
// hit record (counts, reputation, dates, expiry and the ids of the threat
// label and meaningful name in reference-counted string tables). A
// verdict whose values do not fit (a count over 255, a reputation outside
// int16, a date outside uint32, a link that is not the digest's page, an
// unusual reason, more than 65535 distinct labels) is kept whole in a
// side map: every verdict comes back exactly as result renders it.
//
// Expiry is rounded down to 16 s (a verdict stops being served up to 16 s
// early, and one that expires within 16 s is not kept) and clamped 17
// years after the cache was made. Eviction is CLOCK, an approximation of
// LRU: a look-up sets the entry's bit; when the cache is full the hand clears
// set bits and evicts the first entry without one, or an expired one.
// The table grows by doubling up to cap/0.95 slots, so a full cache runs
// at load 0.95.
//
// All methods are safe for concurrent use (one mutex).
type verdictCache struct {
	mu     sync.Mutex
	mac    [3]cipher.Block // per digest length: md5, sha1, sha256
	base   int64           // unix seconds; expiries count 16 s units from here
	cap    int
	hand   int        // CLOCK hand: a slot of tab
	tab    table      // tag -> word
	recs   [][]hitRec // chunks of recChunk records (no append slack, no copying)
	nrecs  uint32     // records handed out so far
	free   uint32     // head of the free records list, index+1; 0: none
	names  strtab     // meaningful names of hits
	labels strtab     // threat labels of hits (ids up to 65535, else the hit is whole)
	whole  map[uint64]wholeEntry
}

const (
	loadNum, loadDen = 19, 20 // the table's load at capacity
	minSlots         = 64     // the table's first size
	recChunk         = 1024   // hit records allocated at a time
	expUnit          = 16     // seconds per expiry unit
	expBits          = 25     // bits of a plain entry's expiry
	maxExp           = 1<<expBits - 1
	refBit           = 1 << 31 // CLOCK reference bit of a word
	kindShift        = 29      // bits 29-30: the kind
	payload          = 1<<kindShift - 1
)

// Entry kinds (bits 29-30 of a word).
const (
	kindPlain = iota // bits 27-28 status, 25-26 reason, 0-24 expiry
	kindHit          // bits 0-28: index of a hitRec
	kindWhole        // in the whole map, by tag
)

// plainStatus and plainReason are the codes of a plain entry; a status or
// reason not listed makes the entry whole.
var (
	plainStatus = []string{VerdictNotFound, VerdictError, VerdictSkipped}
	plainReason = []string{"", virustotal.ReasonPackage, virustotal.ReasonAllowlisted}
)

// hitRec is a hit's details, 24 bytes. A free record holds the next free
// one in first.
type hitRec struct {
	exp, first, last uint32   // expiry units (up to maxExp); first submission and last analysis, unix seconds
	name             uint32   // names id; bit 31: the Link is virustotal.FileLink of the digest (else "")
	counts           [4]uint8 // malicious, suspicious, harmless, undetected
	label            uint16   // labels id
	rep              int16
}

const linkBit = 1 << 31

// wholeEntry is a verdict the compact forms cannot hold.
type wholeEntry struct {
	status, reason string
	d              audit.VTVerdict
	exp            uint32 // expiry units
}

func newVerdictCache(capacity int) *verdictCache {
	c := &verdictCache{cap: max(capacity, 1), base: time.Now().Unix(), whole: map[uint64]wholeEntry{}}
	for i := range c.mac {
		var k [16]byte
		_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (it crashes the program instead)
		c.mac[i], _ = aes.NewCipher(k[:])
	}
	c.names.init()
	c.labels.init()
	c.tab.resize(min(minSlots, c.maxSlots()))
	return c
}

func (c *verdictCache) maxSlots() int { return (c.cap*loadDen + loadNum - 1) / loadNum }

// tag returns the keyed tag of a digest in lower-case hex, or false when
// it is not an md5, sha1 or sha256.
func (c *verdictCache) tag(digest string) (uint64, bool) {
	var d [32]byte
	var mac cipher.Block
	switch len(digest) {
	case 32:
		mac = c.mac[0]
	case 40:
		mac = c.mac[1]
	case 64:
		mac = c.mac[2]
	default:
		return 0, false
	}
	if _, err := hex.Decode(d[:], []byte(digest)); err != nil {
		return 0, false
	}
	var x [16]byte
	mac.Encrypt(x[:], d[:16])
	for i := range x {
		x[i] ^= d[16+i]
	}
	mac.Encrypt(x[:], x[:])
	return max(binary.LittleEndian.Uint64(x[:8]), 1), true // 0 marks an empty slot
}

// get returns the event's virustotal field for the digest from a live
// cached verdict, as result renders it, and marks the entry used.
func (c *verdictCache) get(digest string, now time.Time) (*audit.VTResult, bool) {
	t, ok := c.tag(digest)
	if !ok {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.tab.find(t)
	if i < 0 {
		return nil, false
	}
	w := c.tab.vals[i]
	if !c.live(t, w, now.Unix()) {
		c.delete(i)
		return nil, false
	}
	c.tab.vals[i] = w | refBit
	r := &audit.VTResult{Hash: digest}
	switch w >> kindShift & 3 {
	case kindPlain:
		r.Status, r.Reason = plainStatus[w>>27&3], plainReason[w>>25&3]
	case kindHit:
		h := c.rec(w & payload)
		r.Status = VerdictFound
		r.VTVerdict = &audit.VTVerdict{Malicious: int64(h.counts[0]), Suspicious: int64(h.counts[1]),
			Harmless: int64(h.counts[2]), Undetected: int64(h.counts[3]), Reputation: int64(h.rep),
			ThreatLabel: c.labels.str(uint32(h.label)), MeaningfulName: c.names.str(h.name &^ linkBit),
			FirstSubmission: int64(h.first), LastAnalysis: int64(h.last)}
		if h.name&linkBit != 0 {
			r.VTVerdict.Link = virustotal.FileLink(digest)
		}
	default:
		e := c.whole[t]
		r.Status, r.Reason = e.status, e.reason
		if e.status == VerdictFound {
			d := e.d
			r.VTVerdict = &d
		}
	}
	return r, true
}

// live reports whether the entry with tag t and word w holds at now.
func (c *verdictCache) live(t uint64, w uint32, now int64) bool {
	var u uint32
	switch w >> kindShift & 3 {
	case kindPlain:
		u = w & maxExp
	case kindHit:
		u = c.rec(w & payload).exp
	default:
		u = c.whole[t].exp
	}
	return now < c.base+int64(u)*expUnit
}

// units returns the expiry in 16 s units after base, rounded down and
// clamped to maxExp, and false when that is not after now or is under
// one unit (now may be before base when the clock was set back).
func (c *verdictCache) units(exp, now int64) (uint32, bool) {
	if exp-c.base < expUnit {
		return 0, false
	}
	u := min((exp-c.base)/expUnit, maxExp)
	return uint32(u), c.base+u*expUnit > now
}

// put caches v for digest (replacing what the digest had), unless it
// holds no longer than the next 16 s; a nil v only removes the digest's
// verdict. used sets the entry's reference bit at once (a verdict this
// host waited for).
func (c *verdictCache) put(digest string, v *Verdict, used bool, now time.Time) {
	t, ok := c.tag(digest)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.tab.find(t); i >= 0 {
		c.delete(i)
	}
	if v == nil {
		return
	}
	w, ok := c.pack(t, digest, v, now.Unix())
	if !ok {
		return
	}
	if used {
		w |= refBit
	}
	if c.tab.n >= c.cap {
		c.evict(now.Unix())
	}
	if size := len(c.tab.keys); (c.tab.n+1)*loadDen > size*loadNum && size < c.maxSlots() {
		c.tab.resize(min(2*size, c.maxSlots()))
	}
	c.tab.insert(t, w)
}

// pack stores v's payload (a hit record, strings, a whole entry) and
// returns its word, or false when v expires within 16 s.
func (c *verdictCache) pack(t uint64, digest string, v *Verdict, now int64) (uint32, bool) {
	u, ok := c.units(v.LookedUp+v.TTL, now)
	if !ok {
		return 0, false
	}
	st, rs := index(plainStatus, v.Status), index(plainReason, v.Reason)
	switch {
	case st >= 0 && rs >= 0:
		return kindPlain<<kindShift | uint32(st)<<27 | uint32(rs)<<25 | u, true
	case v.Status == VerdictFound && fitsRecord(digest, v):
		if w, ok := c.hit(v, u); ok {
			return w, true
		}
	}
	e := wholeEntry{status: v.Status, reason: v.Reason, exp: u}
	if v.Status == VerdictFound {
		e.d = *result(digest, v).VTVerdict
	}
	c.whole[t] = e
	return kindWhole << kindShift, true
}

// hit stores v, which fitsRecord, in a hit record expiring at u and
// returns its word, or false when a string table refuses its label or
// name (v is then kept whole).
func (c *verdictCache) hit(v *Verdict, u uint32) (uint32, bool) {
	label, ok := c.labels.add(v.ThreatLabel, math.MaxUint16)
	if !ok {
		return 0, false
	}
	name, ok := c.names.add(v.MeaningfulName, linkBit-1)
	if !ok {
		c.labels.drop(label)
		return 0, false
	}
	h := hitRec{exp: u, first: uint32(v.FirstSubmission), last: uint32(v.LastAnalysis), name: name, label: uint16(label),
		rep: int16(v.Reputation), counts: [4]uint8{uint8(v.Malicious), uint8(v.Suspicious), uint8(v.Harmless), uint8(v.Undetected)}}
	if v.Link != "" {
		h.name |= linkBit
	}
	return kindHit<<kindShift | c.record(h), true
}

func (c *verdictCache) rec(r uint32) *hitRec { return &c.recs[r/recChunk][r%recChunk] }

// record stores h in a free record and returns its index.
func (c *verdictCache) record(h hitRec) uint32 {
	if c.free == 0 {
		if c.nrecs%recChunk == 0 {
			c.recs = append(c.recs, make([]hitRec, recChunk))
		}
		c.nrecs++
		*c.rec(c.nrecs - 1) = h
		return c.nrecs - 1
	}
	r := c.free - 1
	c.free = c.rec(r).first
	*c.rec(r) = h
	return r
}

// fitsRecord reports whether a hit record holds v exactly.
func fitsRecord(digest string, v *Verdict) bool {
	byte8 := func(n int64) bool { return n >= 0 && n <= math.MaxUint8 }
	date := func(n int64) bool { return n >= 0 && n <= math.MaxUint32 }
	return v.Reason == "" && byte8(v.Malicious) && byte8(v.Suspicious) && byte8(v.Harmless) && byte8(v.Undetected) &&
		v.Reputation >= math.MinInt16 && v.Reputation <= math.MaxInt16 && date(v.FirstSubmission) && date(v.LastAnalysis) &&
		(v.Link == "" || v.Link == virustotal.FileLink(digest))
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// delete empties slot i of the table and frees its payload.
func (c *verdictCache) delete(i int) {
	t, w := c.tab.keys[i], c.tab.vals[i]
	switch w >> kindShift & 3 {
	case kindHit:
		r := w & payload
		c.labels.drop(uint32(c.rec(r).label))
		c.names.drop(c.rec(r).name &^ linkBit)
		*c.rec(r) = hitRec{first: c.free}
		c.free = r + 1
	case kindWhole:
		delete(c.whole, t)
	}
	c.tab.delete(i)
}

// evict removes one entry: the first the CLOCK hand finds expired or not
// used since the hand last passed (clearing the bits it passes). The hand
// then moves past the emptied slot, so that the insert that follows, which
// may move entries one slot on, cannot bring an entry it passed in front
// of it; the entry the deletion shifted into that slot waits for the next
// round.
func (c *verdictCache) evict(now int64) {
	for {
		c.hand %= len(c.tab.keys)
		t, w := c.tab.keys[c.hand], c.tab.vals[c.hand]
		switch {
		case t == 0:
		case w&refBit == 0 || !c.live(t, w, now):
			c.delete(c.hand)
			c.hand++
			return
		default:
			c.tab.vals[c.hand] = w &^ refBit
		}
		c.hand++
	}
}

// len returns the number of cached verdicts (expired ones included until
// they are met).
func (c *verdictCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tab.n
}

// remove drops the digest's verdict (a tombstone on the topic).
func (c *verdictCache) remove(digest string) { c.put(digest, nil, false, time.Time{}) }

// strtab interns the labels or names of hit records, counting
// references so that a string goes when its last verdict does. Each
// distinct string costs its bytes, a length byte or two, an 8-byte entry
// and a 12-byte index slot (at load 0.63 to 0.95). Id 0 is "".
type strtab struct {
	seed  maphash.Seed
	index table    // seeded hash of a string -> its id
	arena []byte   // the strings, each a uvarint length and the bytes; never changed in place
	ents  []strEnt // by id
	free  []uint32 // ids to reuse
	dead  int      // arena bytes of dropped strings
}

type strEnt struct{ off, refs uint32 }

func (s *strtab) init() {
	s.seed, s.ents = maphash.MakeSeed(), []strEnt{{}}
	s.index.resize(16)
}

// str returns the string with this id.
func (s *strtab) str(id uint32) string {
	if id == 0 {
		return ""
	}
	n, k := binary.Uvarint(s.arena[s.ents[id].off:])
	b := s.arena[s.ents[id].off+uint32(k):]
	return string(b[:n])
}

// key is the index key of x: its seeded hash, never 0.
func (s *strtab) key(x string) uint64 { return max(maphash.String(s.seed, x), 1) }

// add returns x's id and counts one more reference to it. It fails, and
// changes nothing, when a new id would be over top or x's hash is another
// string's (a chance of 2^-64 a pair): the caller keeps the verdict whole.
func (s *strtab) add(x string, top uint32) (uint32, bool) {
	if x == "" {
		return 0, true
	}
	k := s.key(x)
	if i := s.index.find(k); i >= 0 {
		id := s.index.vals[i]
		if s.str(id) != x {
			return 0, false
		}
		s.ents[id].refs++
		return id, true
	}
	id := uint32(len(s.ents))
	if n := len(s.free); n > 0 {
		id = s.free[n-1]
	}
	if id > top || len(s.arena)+len(x)+binary.MaxVarintLen64 > math.MaxUint32 {
		return 0, false
	}
	if n := len(s.free); n > 0 {
		s.free = s.free[:n-1]
	} else {
		s.ents = append(s.ents, strEnt{})
	}
	s.ents[id] = strEnt{off: uint32(len(s.arena)), refs: 1}
	s.arena = binary.AppendUvarint(s.arena, uint64(len(x)))
	s.arena = append(s.arena, x...)
	if (s.index.n+1)*loadDen > len(s.index.keys)*loadNum {
		s.index.resize(len(s.index.keys) * 3 / 2)
	}
	s.index.insert(k, id)
	return id, true
}

// drop counts one reference less to id; the last frees the string, and
// the arena is compacted when over half of it is dropped strings.
func (s *strtab) drop(id uint32) {
	if id == 0 {
		return
	}
	if s.ents[id].refs--; s.ents[id].refs > 0 {
		return
	}
	x := s.str(id)
	s.index.delete(s.index.find(s.key(x)))
	s.dead += (bits.Len(uint(len(x)))+6)/7 + len(x) // the uvarint length and the bytes
	s.ents[id].off = 0
	s.free = append(s.free, id)
	if s.dead > 4096 && 2*s.dead > len(s.arena) {
		s.compact()
	}
}

// compact copies the live strings to a new arena (ids do not change).
func (s *strtab) compact() {
	arena := make([]byte, 0, len(s.arena)-s.dead)
	for id := 1; id < len(s.ents); id++ {
		if s.ents[id].refs == 0 {
			continue
		}
		x := s.str(uint32(id))
		s.ents[id].off = uint32(len(arena))
		arena = binary.AppendUvarint(arena, uint64(len(x)))
		arena = append(arena, x...)
	}
	s.arena, s.dead = arena, 0
}
