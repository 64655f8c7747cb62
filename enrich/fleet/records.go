package fleet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// recFile is the verdict cache's append-only file of records: the
// verdicts a slot's word cannot hold (hits, and unusual reasons), one
// record each, read back with one pread (two for a record over
// readAhead bytes) when an event's hash has one. The file is made in the
// host's state directory and unlinked at once: it needs no name, two
// processes sharing the directory never meet, nothing is left after a
// crash, and a restart starts empty (the host re-reads the verdicts topic
// anyway). Its pages are in the kernel's page cache, not in the
// process's resident memory.
//
// A record starts at a multiple of recAlign bytes (its offset in the
// slot's word is in those units): the slot's tag (8 bytes, little
// endian), the body's length (uvarint) and the body (encodeRecord), then
// zeros up to the next multiple. Records of entries that went are dead
// bytes; the cache copies the live records to a new file when over half
// of the file is dead (verdictCache.compact).
//
// When the file cannot be made or written (a read-only or full file
// system), append fails: the cache keeps the verdicts a word holds,
// counts each verdict it could not keep in unstored, logs when writing
// starts failing and when it works again, and tries to make a file again
// at most once a minute. Nothing waits beyond the system calls.
//
// Not safe for concurrent use: the cache's mutex guards it.
type recFile struct {
	dir      string
	log      *slog.Logger
	unstored *metrics.Counter
	f        *os.File // nil: none could be made
	gen      uint32   // counts the files made: offsets are only meaningful within one
	end      int64    // bytes written, a multiple of recAlign
	dead     int64    // bytes of dead records
	retry    time.Time
	failing  bool   // the last write or make failed (logged once)
	rbuf     []byte // scratch for reads
	wbuf     []byte // scratch for a record
}

const (
	recAlign   = 8                        // record alignment, the unit of offsets in a word
	readAhead  = 128                      // bytes read at once: most records fit
	maxRecFile = (payload + 1) * recAlign // offsets must fit a word's payload
	compactMin = 64 << 10                 // dead bytes below which the file is never compacted
)

var (
	errBadRecord = errors.New("fleet: verdict cache file: bad record")
	errBadBody   = errors.New("fleet: verdict cache file: bad record body")
	errClosed    = errors.New("fleet: verdict cache file closed")
)

// create makes a new unlinked file in f.dir.
func (f *recFile) create() (*os.File, error) {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return nil, err
	}
	file, err := os.CreateTemp(f.dir, ".fleet-verdicts-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(file.Name()); err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

// fail notes a failed make or write: logged when the previous one worked,
// and no new file is tried for a minute.
func (f *recFile) fail(err error, now time.Time) {
	f.retry = now.Add(time.Minute)
	if !f.failing {
		f.failing = true
		f.log.Warn("fleet: cannot write the verdict cache file; verdicts other than not_found and skipped are not cached (counted in audisp_enrich_fleet_cache_unstored_total) until it works again", "dir", f.dir, "err", err)
	}
}

// ok notes a write that worked.
func (f *recFile) ok() {
	if f.failing {
		f.failing = false
		f.log.Info("fleet: the verdict cache file is written again", "dir", f.dir)
	}
}

// append writes a record of body under tag and returns its offset in
// recAlign units, or false (counted in unstored) when it cannot.
func (f *recFile) append(tag uint64, body []byte, now time.Time) (uint32, bool) {
	if f.f == nil && !now.Before(f.retry) {
		if file, err := f.create(); err != nil {
			f.fail(err, now)
		} else {
			f.f, f.end, f.dead = file, 0, 0
			f.gen++
		}
	}
	rec := binary.LittleEndian.AppendUint64(f.wbuf[:0], tag)
	rec = binary.AppendUvarint(rec, uint64(len(body)))
	rec = append(rec, body...)
	for len(rec)%recAlign != 0 {
		rec = append(rec, 0)
	}
	f.wbuf = rec
	if f.f == nil || f.end+int64(len(rec)) > maxRecFile {
		f.unstored.Inc()
		return 0, false
	}
	if _, err := f.f.WriteAt(rec, f.end); err != nil {
		f.fail(err, now)
		f.unstored.Inc()
		return 0, false
	}
	f.ok()
	off := f.end / recAlign
	f.end += int64(len(rec))
	return uint32(off), true
}

// read returns the body of the record at off, which must be tag's, and
// the record's whole length in bytes.
func (f *recFile) read(off uint32, tag uint64) ([]byte, int64, error) {
	pos := int64(off) * recAlign
	if f.f == nil {
		return nil, 0, errClosed
	}
	if pos >= f.end {
		return nil, 0, errBadRecord
	}
	b := f.rbuf[:min(readAhead, f.end-pos)]
	if _, err := f.f.ReadAt(b, pos); err != nil {
		return nil, 0, err
	}
	if len(b) < 9 || binary.LittleEndian.Uint64(b) != tag {
		return nil, 0, errBadRecord
	}
	n, k := binary.Uvarint(b[8:])
	if k <= 0 || n > uint64(f.end-pos) {
		return nil, 0, errBadRecord
	}
	body := int64(8+k) + int64(n)
	if body > f.end-pos {
		return nil, 0, errBadRecord
	}
	if body > int64(len(b)) {
		if int64(cap(f.rbuf)) < body {
			f.rbuf = make([]byte, body)
		}
		b = f.rbuf[:body]
		if _, err := f.f.ReadAt(b, pos); err != nil {
			return nil, 0, err
		}
	}
	return b[8+k : body], (body + recAlign - 1) / recAlign * recAlign, nil
}

// drop counts the record at off dead.
func (f *recFile) drop(off uint32, tag uint64) {
	if _, n, err := f.read(off, tag); err == nil {
		f.dead += n
	}
}

// close closes the file (its space is freed: it has no name).
func (f *recFile) close() {
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
}

// scan calls fn with the tag, offset and whole record (from tag to
// padding) of each record of file up to end, in file order.
func scan(file *os.File, end int64, fn func(tag uint64, off uint32, rec []byte) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(file, 0, end), 64<<10)
	var buf []byte
	for pos := int64(0); pos < end; {
		var head [8 + binary.MaxVarintLen64]byte
		if _, err := io.ReadFull(r, head[:8]); err != nil {
			return err
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		k := binary.PutUvarint(head[8:], n)
		size := (int64(8+k) + int64(n) + recAlign - 1) / recAlign * recAlign
		if pos+size > end {
			return errBadRecord
		}
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		copy(buf, head[:8+k])
		if _, err := io.ReadFull(r, buf[8+k:]); err != nil {
			return err
		}
		if err := fn(binary.LittleEndian.Uint64(head[:8]), uint32(pos/recAlign), buf); err != nil {
			return err
		}
		pos += size
	}
	return nil
}

// Link forms in a record.
const (
	linkNone   = iota // ""
	linkDigest        // virustotal.FileLink of the digest
	linkOther         // a string follows
)

// encodeRecord appends the body of a record holding v's rendering (what
// result returns) and its expiry in units.
func encodeRecord(dst []byte, digest string, v *Verdict, exp uint32) []byte {
	str := func(s string) { dst = binary.AppendUvarint(dst, uint64(len(s))); dst = append(dst, s...) }
	dst = binary.AppendUvarint(dst, uint64(exp))
	str(v.Status)
	str(v.Reason)
	if v.Status != VerdictFound {
		return dst
	}
	for _, n := range []int64{v.Malicious, v.Suspicious, v.Harmless, v.Undetected, v.Reputation, v.FirstSubmission, v.LastAnalysis} {
		dst = binary.AppendVarint(dst, n)
	}
	str(v.ThreatLabel)
	str(v.MeaningfulName)
	switch v.Link {
	case "":
		dst = append(dst, linkNone)
	case virustotal.FileLink(digest):
		dst = append(dst, linkDigest)
	default:
		dst = append(dst, linkOther)
		str(v.Link)
	}
	return dst
}

// decodeRecord returns the rendering and expiry units a record body holds.
// The rendering is made by result, as for a verdict from the topic.
func decodeRecord(b []byte, digest string) (*audit.VTResult, uint32, error) {
	failed := false
	num := func() uint64 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			failed = true
			return 0
		}
		b = b[k:]
		return n
	}
	str := func() string {
		n := num()
		if n > uint64(len(b)) {
			failed = true
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	exp := num()
	v := Verdict{Status: str(), Reason: str()}
	if failed || exp > maxExp {
		return nil, 0, errBadBody
	}
	if v.Status == VerdictFound {
		var ns [7]int64
		for i := range ns {
			n, k := binary.Varint(b)
			if k <= 0 {
				return nil, 0, errBadBody
			}
			ns[i], b = n, b[k:]
		}
		v.Malicious, v.Suspicious, v.Harmless, v.Undetected, v.Reputation = ns[0], ns[1], ns[2], ns[3], ns[4]
		v.FirstSubmission, v.LastAnalysis = ns[5], ns[6]
		v.ThreatLabel, v.MeaningfulName = str(), str()
		if failed || len(b) == 0 {
			return nil, 0, errBadBody
		}
		form := b[0]
		b = b[1:]
		switch form {
		case linkNone:
		case linkDigest:
			v.Link = virustotal.FileLink(digest)
		case linkOther:
			if v.Link = str(); failed {
				return nil, 0, errBadBody
			}
		default:
			return nil, 0, errBadBody
		}
	}
	if len(b) != 0 {
		return nil, 0, errBadBody
	}
	return result(digest, &v), uint32(exp), nil
}
