package buffer

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// On-disk record layout (little endian):
//
//	0  u32 body length
//	4  u32 CRC-32C of bytes 8 .. 24+length (seq, time, body)
//	8  u64 seq
//	16 i64 append time, unix nanoseconds
//	24 body: uvarint-prefixed Key, Value, Meta.Node, then Types, Keys and
//	   Techniques as a uvarint count of uvarint-prefixed strings, then
//	   Meta.Severity as a varint and Meta.Kind as a prefixed string.
//
// A segment file starts with segMagic and holds records back to back with
// strictly increasing seqs.
const (
	recHeader = 24
	// maxBody bounds the length field; larger values are corruption.
	maxBody  = 64 << 20
	segMagic = "AESPOOL1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBody = errors.New("malformed record body")

// appendRecord appends the record for m (m.Seq already set) to dst.
func appendRecord(dst []byte, m *sinks.Message, at time.Time) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recHeader)...)
	dst = appendBytes(dst, m.Key)
	dst = appendBytes(dst, m.Value)
	dst = appendBytes(dst, []byte(m.Meta.Node))
	for _, l := range [][]string{m.Meta.Types, m.Meta.Keys, m.Meta.Techniques} {
		dst = binary.AppendUvarint(dst, uint64(len(l)))
		for _, s := range l {
			dst = appendBytes(dst, []byte(s))
		}
	}
	dst = binary.AppendVarint(dst, int64(m.Meta.Severity))
	dst = appendBytes(dst, []byte(m.Meta.Kind))
	h := dst[start : start+recHeader]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(dst)-start-recHeader))
	binary.LittleEndian.PutUint64(h[8:], m.Seq)
	binary.LittleEndian.PutUint64(h[16:], uint64(at.UnixNano()))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(dst[start+8:], castagnoli))
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// recordAt checks the record starting at b[0]. It returns the record's total
// length, or 0 when b does not start with a whole record whose CRC matches
// (too short, implausible length, or checksum mismatch). complete reports
// whether b was long enough to hold the record its length field claims.
func recordAt(b []byte) (n int, complete bool) {
	if len(b) < recHeader {
		return 0, false
	}
	l := binary.LittleEndian.Uint32(b)
	if l > maxBody {
		return 0, true
	}
	n = recHeader + int(l)
	if len(b) < n {
		return 0, false
	}
	if crc32.Checksum(b[8:n], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, true
	}
	return n, true
}

// recSeq and recTime read the header of a record recordAt accepted.
func recSeq(b []byte) uint64 { return binary.LittleEndian.Uint64(b[8:]) }

func recTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.LittleEndian.Uint64(b[16:])))
}

// decodeRecord decodes a record recordAt accepted into a Message whose
// slices and strings do not alias rec. Its slices are carved from c's
// arena and its Node and Kind strings reuse the previous ones when equal,
// so that decoding a batch costs a few allocations, not several per
// record.
func decodeRecord(rec []byte, c *decodeCache) (sinks.Message, error) {
	m := sinks.Message{Seq: recSeq(rec)}
	d := decoder{b: c.copy(rec[recHeader:])}
	m.Key = d.bytes()
	m.Value = d.bytes()
	m.Meta.Node = c.node.of(d.bytes())
	m.Meta.Types = d.strings()
	m.Meta.Keys = d.strings()
	m.Meta.Techniques = d.strings()
	sev, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBody
	} else {
		d.b = d.b[n:]
		m.Meta.Severity = int(sev)
	}
	m.Meta.Kind = c.kind.of(d.bytes())
	if d.err != nil || len(d.b) != 0 {
		return sinks.Message{}, errBody
	}
	if len(m.Key) == 0 {
		m.Key = nil
	}
	return m, nil
}

// decodeCache is what decodeRecord reuses from one record to the next.
// Not safe for concurrent use.
type decodeCache struct {
	// arena holds copies of record bodies back to back; a body is never
	// written again once copied (the messages alias it), and a full arena
	// is left to the messages that use it.
	arena      []byte
	node, kind lastString
}

// arenaSize is the size of a fresh arena (a larger body gets its own).
const arenaSize = 64 << 10

// copy returns a copy of b that nothing else writes to.
func (c *decodeCache) copy(b []byte) []byte {
	if cap(c.arena)-len(c.arena) < len(b) {
		if len(b) > arenaSize/4 {
			return append([]byte(nil), b...)
		}
		c.arena = make([]byte, 0, arenaSize)
	}
	at := len(c.arena)
	c.arena = append(c.arena, b...)
	return c.arena[at:len(c.arena):len(c.arena)]
}

// lastString is the last string decoded for a field: the same bytes again
// give the same string, without a new allocation.
type lastString struct{ s string }

func (l *lastString) of(b []byte) string {
	if string(b) != l.s {
		l.s = string(b)
	}
	return l.s
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	l, n := binary.Uvarint(d.b)
	if n <= 0 || l > uint64(len(d.b)-n) {
		d.err = errBody
		return nil
	}
	out := d.b[n : n+int(l) : n+int(l)]
	d.b = d.b[n+int(l):]
	return out
}

func (d *decoder) strings() []string {
	if d.err != nil {
		return nil
	}
	c, n := binary.Uvarint(d.b)
	// Every string takes at least one byte, which bounds a hostile count.
	if n <= 0 || c > uint64(len(d.b)-n) {
		d.err = errBody
		return nil
	}
	d.b = d.b[n:]
	if c == 0 {
		return nil
	}
	out := make([]string, 0, c)
	for range c {
		out = append(out, string(d.bytes()))
	}
	return out
}
