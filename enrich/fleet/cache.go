package fleet

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// verdictCache is the host's bounded cache of fleet verdicts: 16.8
// bytes of memory a verdict, whatever the verdict. It keeps what an
// event's virustotal field shows (result) and nothing else: the source,
// the engine total, the lookup time and the names of skipped verdicts are
// in the verdict document only.
//
// Layout: an open-addressed table (table: Robin Hood linear probing,
// deletion by backward shift) of 16-byte slots, a tag, a word and the
// verdict's looked_up (unix seconds, clamped to 32 bits: put refuses a
// verdict older than the one held, a replay). The
// tag is a keyed 64-bit MAC of the digest (AES-128 CBC-MAC over the
// raw digest, one random key per digest length, drawn when the cache is
// made and never leaving the process), so an attacker who cannot read the
// process memory cannot aim a file at another file's tag; an accidental
// tag collision has probability about n/2^64 per look-up of an unknown
// digest (docs/fleet.md). The word packs a CLOCK reference bit, the
// entry's kind and either the whole verdict (not_found, error and skipped
// with the usual reasons: status, reason, expiry in 16-second units) or
// the offset of a record in the cache's file (recFile: hits and unusual
// reasons, with their expiry, read back with a pread, or from the last
// hotSize records read, kept decoded), so that every verdict comes back
// exactly as result renders it. When the file cannot
// be written, verdicts that need a record are not cached (counted).
//
// Expiry is rounded down to 16 s (a verdict stops being served up to 16 s
// early, and one that expires within 16 s is not kept) and clamped 17
// years after the cache was made. Eviction is CLOCK, an approximation of
// LRU: a look-up sets the entry's bit; when the cache is full the hand clears
// set bits and evicts the first entry without one, or an expired one
// (the expiry of a record is only read by a look-up: an expired record
// with its bit set waits for the hand's next pass).
// The table grows by doubling up to cap/0.95 slots, so a full cache runs
// at load 0.95.
//
// All methods are safe for concurrent use (one mutex; a look-up of a
// record reads the file under it).
type verdictCache struct {
	mu   sync.Mutex
	mac  [3]cipher.Block // per digest length: md5, sha1, sha256
	base int64           // unix seconds; expiries count 16 s units from here
	cap  int
	hand int   // CLOCK hand: a slot of tab
	tab  table // tag -> word
	file recFile
	enc  []byte // scratch for a record body
	// hot holds the last record read per tag%hotSize (direct-mapped, a
	// fixed 60 KiB or so): a file executed again gets its verdict without
	// a system call. A record never changes where it is, so an entry
	// matches while its tag, offset and file (gen) do.
	hot [hotSize]hotRec
}

const hotSize = 256

// hotRec is a record read from the file, decoded (r.VTVerdict is only
// non-nil as a mark: the copy to hand out is d).
type hotRec struct {
	tag      uint64
	off, gen uint32
	exp      uint32
	r        audit.VTResult
	d        audit.VTVerdict
}

const (
	loadNum, loadDen = 19, 20 // the table's load at capacity
	minSlots         = 64     // the table's first size
	expUnit          = 16     // seconds per expiry unit
	expBits          = 25     // bits of a plain entry's expiry
	maxExp           = 1<<expBits - 1
	refBit           = 1 << 31 // CLOCK reference bit of a word
	kindShift        = 29      // bits 29-30: the kind
	payload          = 1<<kindShift - 1
)

// Entry kinds (bits 29-30 of a word).
const (
	kindPlain  = iota // bits 27-28 status, 25-26 reason, 0-24 expiry
	kindRecord        // bits 0-28: offset of a record in the file, in recAlign units
	kindMoved         // a record copied to the new file during compact
)

// plainStatus and plainReason are the codes of a plain entry; a status or
// reason not listed makes the entry a record.
var (
	plainStatus = []string{VerdictNotFound, VerdictError, VerdictSkipped}
	plainReason = []string{"", virustotal.ReasonPackage, virustotal.ReasonAllowlisted}
)

// newVerdictCache returns a cache of up to capacity verdicts whose records
// go to an unlinked file in dir, counting in unstored the verdicts it
// could not keep for want of the file. close releases the file.
func newVerdictCache(capacity int, dir string, log *slog.Logger, unstored *metrics.Counter) *verdictCache {
	c := &verdictCache{cap: max(capacity, 1), base: time.Now().Unix(),
		file: recFile{dir: dir, log: log, unstored: unstored, rbuf: make([]byte, readAhead)}}
	for i := range c.mac {
		var k [16]byte
		_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (it crashes the program instead)
		c.mac[i], _ = aes.NewCipher(k[:])
	}
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
	w := uint32(c.tab.vals[i])
	var r *audit.VTResult
	switch {
	case w>>kindShift&3 == kindRecord:
		r = c.record(t, w&payload, digest, now)
	case c.live(w&maxExp, now.Unix()):
		r = &audit.VTResult{Hash: digest, Status: plainStatus[w>>27&3], Reason: plainReason[w>>25&3]}
	}
	if r == nil { // expired, or a record that could not be read
		c.delete(i)
		return nil, false
	}
	c.tab.vals[i] |= refBit
	return r, true
}

// record returns the rendering a live record holds, from hot or read
// from the file, or nil (a read error is logged as a write error is;
// after close every record is a miss).
func (c *verdictCache) record(t uint64, off uint32, digest string, now time.Time) *audit.VTResult {
	h := &c.hot[t%hotSize]
	if h.tag != t || h.off != off || h.gen != c.file.gen {
		body, _, err := c.file.read(off, t)
		var r *audit.VTResult
		var exp uint32
		if err == nil {
			r, exp, err = decodeRecord(body, digest)
		}
		if err != nil {
			if err != errClosed {
				c.file.fail(err, now)
			}
			return nil
		}
		*h = hotRec{tag: t, off: off, gen: c.file.gen, exp: exp, r: *r}
		if r.VTVerdict != nil {
			h.d = *r.VTVerdict
		}
	}
	if !c.live(h.exp, now.Unix()) {
		return nil
	}
	r := h.r
	if r.VTVerdict != nil {
		d := h.d
		r.VTVerdict = &d
	}
	return &r
}

// live reports whether an expiry in units is after now.
func (c *verdictCache) live(exp uint32, now int64) bool { return now < c.base+int64(exp)*expUnit }

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
// holds no longer than the next 16 s or needs a record the file cannot
// take. used sets the entry's reference bit at once (a verdict this host
// waited for). It returns false, and keeps what it holds, when v was
// looked up before the verdict the digest holds (a replayed older
// verdict); an equal looked_up replaces it (the service republishing).
func (c *verdictCache) put(digest string, v *Verdict, used bool, now time.Time) bool {
	t, ok := c.tag(digest)
	if !ok {
		return true
	}
	lu := uint64(min(max(v.LookedUp, 0), 1<<32-1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.tab.find(t); i >= 0 {
		if c.tab.vals[i]>>32 > lu {
			return false
		}
		c.delete(i)
	}
	w32, ok := c.pack(t, digest, v, now)
	if !ok {
		return true
	}
	w := lu<<32 | uint64(w32)
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
	c.compact(now)
	return true
}

// pack returns v's word, writing its record when it needs one, or false
// when v expires within 16 s or the record cannot be written.
func (c *verdictCache) pack(t uint64, digest string, v *Verdict, now time.Time) (uint32, bool) {
	u, ok := c.units(v.LookedUp+v.TTL, now.Unix())
	if !ok {
		return 0, false
	}
	st, rs := index(plainStatus, v.Status), index(plainReason, v.Reason)
	if st >= 0 && rs >= 0 {
		return kindPlain<<kindShift | uint32(st)<<27 | uint32(rs)<<25 | u, true
	}
	c.enc = encodeRecord(c.enc[:0], digest, v, u)
	off, ok := c.file.append(t, c.enc, now)
	return kindRecord<<kindShift | off, ok
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// delete empties slot i of the table; its record, if any, is dead.
func (c *verdictCache) delete(i int) {
	if w := uint32(c.tab.vals[i]); w>>kindShift&3 == kindRecord {
		c.file.drop(w&payload, c.tab.keys[i])
	}
	c.tab.delete(i)
}

// evict removes one entry: the first the CLOCK hand finds unused since
// the hand last passed (clearing the bits it passes), or plain and
// expired. The hand then moves past the emptied slot, so that the insert
// that follows, which may move entries one slot on, cannot bring an entry
// it passed in front of it; the entry the deletion shifted into that slot
// waits for the next round.
func (c *verdictCache) evict(now int64) {
	for {
		c.hand %= len(c.tab.keys)
		t, w := c.tab.keys[c.hand], uint32(c.tab.vals[c.hand])
		switch {
		case t == 0:
		case w&refBit == 0 || w>>kindShift&3 == kindPlain && !c.live(w&maxExp, now):
			c.delete(c.hand)
			c.hand++
			return
		default:
			c.tab.vals[c.hand] &^= refBit
		}
		c.hand++
	}
}

// compact copies the live records to a new file when over half of the
// file is dead records (and at least compactMin bytes): it reads the old
// file in order, copies each record whose tag's slot points at it, and
// marks the slot moved, pointing at the copy; then the moved slots become
// records again. When the new file cannot be made or written, the old one
// stays and the slots moved so far are dropped (counted as unstored, the
// failure logged as a write's).
func (c *verdictCache) compact(now time.Time) {
	f := &c.file
	if f.f == nil || f.dead < compactMin || 2*f.dead <= f.end || now.Before(f.retry) {
		return
	}
	var end int64
	nf, err := f.create()
	if err == nil {
		w := bufio.NewWriterSize(nf, 64<<10)
		err = scan(f.f, f.end, func(t uint64, off uint32, rec []byte) error {
			i := c.tab.find(t)
			if i < 0 || uint32(c.tab.vals[i])&^refBit != kindRecord<<kindShift|off {
				return nil // dead
			}
			if _, err := w.Write(rec); err != nil {
				return err
			}
			c.tab.vals[i] = c.tab.vals[i]&^(3<<kindShift|payload) | kindMoved<<kindShift | uint64(end/recAlign)
			end += int64(len(rec))
			return nil
		})
		if err == nil {
			err = w.Flush()
		}
	}
	for i := 0; i < len(c.tab.keys); {
		switch w := c.tab.vals[i]; {
		case c.tab.keys[i] == 0 || w>>kindShift&3 != kindMoved:
			i++
		case err == nil:
			c.tab.vals[i] = w&^(3<<kindShift) | kindRecord<<kindShift
			i++
		default: // the slot that follows is shifted into i
			c.tab.delete(i)
			f.unstored.Inc()
		}
	}
	if err != nil {
		if nf != nil {
			nf.Close()
		}
		f.fail(err, now)
		return
	}
	f.f.Close()
	f.f, f.end, f.dead = nf, end, 0
	f.gen++
}

// len returns the number of cached verdicts (expired ones included until
// they are met).
func (c *verdictCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tab.n
}

// close releases the records file; the cache is not used after.
func (c *verdictCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
