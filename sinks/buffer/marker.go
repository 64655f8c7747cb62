package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"

	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
)

// ackSet is the set of acknowledged seqs as sorted, disjoint, non-adjacent
// half-open ranges. Acks arrive mostly in order, so it stays short.
type ackSet struct{ r []seqRange }

type seqRange struct{ lo, hi uint64 } // [lo, hi)

func (s *ackSet) contains(seq uint64) bool {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi > seq })
	return i < len(s.r) && s.r[i].lo <= seq
}

func (s *ackSet) add(seq uint64) {
	// i is the first range that ends after seq.
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi > seq })
	if i < len(s.r) && s.r[i].lo <= seq {
		return
	}
	joinPrev := i > 0 && s.r[i-1].hi == seq
	joinNext := i < len(s.r) && s.r[i].lo == seq+1
	switch {
	case joinPrev && joinNext:
		s.r[i-1].hi = s.r[i].hi
		s.r = append(s.r[:i], s.r[i+1:]...)
	case joinPrev:
		s.r[i-1].hi = seq + 1
	case joinNext:
		s.r[i].lo = seq
	default:
		s.r = append(s.r, seqRange{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = seqRange{seq, seq + 1}
	}
}

// countIn returns how many seqs in [lo, hi) the set holds.
func (s *ackSet) countIn(lo, hi uint64) uint64 {
	var n uint64
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi > lo })
	for ; i < len(s.r) && s.r[i].lo < hi; i++ {
		n += min(s.r[i].hi, hi) - max(s.r[i].lo, lo)
	}
	return n
}

// pruneBelow forgets every seq below lo. It reports whether anything
// changed.
func (s *ackSet) pruneBelow(lo uint64) bool {
	n := 0
	for n < len(s.r) && s.r[n].hi <= lo {
		n++
	}
	changed := n > 0
	s.r = s.r[n:]
	if len(s.r) > 0 && s.r[0].lo < lo {
		s.r[0].lo = lo
		changed = true
	}
	return changed
}

// Marker file: "AEACKS01", u64 next seq, u32 range count, ranges as
// u64 lo, u64 hi, then u32 CRC-32C of everything before it.
const markerMagic = "AEACKS01"

var errMarker = errors.New("malformed ack marker")

func encodeMarker(next uint64, s *ackSet) []byte {
	b := make([]byte, 0, len(markerMagic)+12+16*len(s.r)+4)
	b = append(b, markerMagic...)
	b = binary.LittleEndian.AppendUint64(b, next)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.r)))
	for _, r := range s.r {
		b = binary.LittleEndian.AppendUint64(b, r.lo)
		b = binary.LittleEndian.AppendUint64(b, r.hi)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeMarker(b []byte) (next uint64, s ackSet, err error) {
	const fixed = len(markerMagic) + 12 + 4
	if len(b) < fixed || string(b[:len(markerMagic)]) != markerMagic {
		return 0, s, errMarker
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, s, errMarker
	}
	next = binary.LittleEndian.Uint64(b[len(markerMagic):])
	n := binary.LittleEndian.Uint32(b[len(markerMagic)+8:])
	if uint64(len(b)-fixed) != uint64(n)*16 {
		return 0, s, errMarker
	}
	p := b[len(markerMagic)+12:]
	var last uint64
	for i := range int(n) {
		lo, hi := binary.LittleEndian.Uint64(p[16*i:]), binary.LittleEndian.Uint64(p[16*i+8:])
		if lo >= hi || (i > 0 && lo <= last) {
			return 0, ackSet{}, errMarker
		}
		s.r = append(s.r, seqRange{lo, hi})
		last = hi
	}
	return next, s, nil
}

// writeMarker replaces the marker atomically: temp file, fsync, rename;
// a failed write removes its temp file.
func writeMarker(dir string, data []byte) error {
	tmp := filepath.Join(dir, "acks.tmp")
	f, err := safeopen.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Not left behind: one written by root before the plugin's switch
		// to its service user would stay root's, and the service user
		// could not open it again.
		_ = os.Remove(tmp)
		return fmt.Errorf("write ack marker: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "acks"))
}
