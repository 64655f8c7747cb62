package buffer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
)

// segment is one spool file holding records with seqs from first on.
type segment struct {
	first     uint64
	path      string
	size      int64 // bytes in the file that belong to the segment
	count     int   // valid records
	done      int   // records acked or dropped
	firstTime time.Time
	// skips maps the start of each damaged region already counted to its
	// end, so that reading past it again does not count it twice.
	skips map[int64]int64
}

// skip remembers the damaged region [from, from+n) as counted.
func (s *segment) skip(from, n int64) {
	if s.skips == nil {
		s.skips = map[int64]int64{}
	}
	s.skips[from] = from + n
}

// skipped reports whether the damaged region [from, from+n) was counted.
func (s *segment) skipped(from, n int64) bool {
	end, ok := s.skips[from]
	return ok && end == from+n
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func newSegment(dir string, first uint64) *segment {
	return &segment{first: first, path: filepath.Join(dir, segName(first))}
}

// segReader reads records from a segment file through a window, skipping
// damaged bytes.
type segReader struct {
	seg    *segment
	f      *os.File
	buf    []byte
	bufOff int64  // file offset of buf[0]
	off    int64  // next read position
	expect uint64 // the sequence number after the last record returned
}

const readWindow = 256 << 10

func openSegReader(seg *segment) (*segReader, error) {
	f, err := safeopen.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return &segReader{seg: seg, f: f, off: int64(len(segMagic)), expect: seg.first}, nil
}

func (r *segReader) close() {
	if r != nil && r.f != nil {
		r.f.Close()
	}
}

// window returns the bytes from off on, at least need of them unless the
// file or limit ends first, reading the file as needed.
func (r *segReader) window(off int64, need int, limit int64) ([]byte, error) {
	want := min(int64(need), limit-off)
	if off >= r.bufOff && off+want <= r.bufOff+int64(len(r.buf)) {
		b := r.buf[off-r.bufOff:]
		if int64(len(b)) > limit-off {
			b = b[:limit-off]
		}
		return b, nil
	}
	n := min(max(int64(need), readWindow), limit-off)
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	got, err := r.f.ReadAt(r.buf, off)
	r.buf = r.buf[:got]
	r.bufOff = off
	if err != nil && err != io.EOF {
		return nil, err
	}
	return r.buf, nil
}

// next returns the next valid record at or after r.off and before limit.
// skipFrom/skipped describe damaged bytes jumped over to reach it (or, when
// rec is nil, the damaged bytes between r.off and limit). incomplete is set
// when rec is nil and those trailing bytes start with a record that is cut
// short: the signature of a torn write. rec aliases the reader's window and
// is valid until the next call.
func (r *segReader) next(limit int64) (rec []byte, skipFrom, skipped int64, incomplete bool, err error) {
	start := r.off
	first := true
	for r.off < limit {
		w, err := r.window(r.off, recHeader, limit)
		if err != nil {
			return nil, 0, 0, false, err
		}
		n, complete := recordAt(w)
		if n == 0 && !complete && len(w) >= recHeader {
			// The whole claimed record may just be outside the window.
			if need := recHeader + int(le32(w)); r.off+int64(need) <= limit {
				if w, err = r.window(r.off, need, limit); err != nil {
					return nil, 0, 0, false, err
				}
				n, complete = recordAt(w)
			}
		}
		if n > 0 && recSeq(w) >= r.seg.first {
			rec = w[:n]
			skipped = r.off - start
			r.off += int64(n)
			return rec, start, skipped, false, nil
		}
		if first {
			incomplete = !complete
			first = false
		}
		r.off++
	}
	if r.off > start {
		return nil, start, r.off - start, incomplete, nil
	}
	return nil, 0, 0, false, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
