package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// disk is the durable Buffer: a directory of segment files written
// append-only, plus an ack marker. See docs/buffers.md for the design.
//
// Appends are written to the head segment with one write(2) per Append
// call under the lock, so they survive a process kill at once; a sync
// goroutine fdatasyncs the head at most every FsyncInterval (sooner when
// FsyncBytes are pending) and then rewrites the ack marker if acks or the
// next sequence number changed. A segment file is deleted once every record in it was acked
// (or dropped) and the reader has passed it; the head too, once it is
// fully acknowledged and either holds a quarter of a segment or the spool
// is failing, so that a file system smaller than one segment still frees
// its space.
//
// When the spool cannot take records (a write or a segment creation
// fails: disk full, no inodes, quota, I/O error), they are kept in a
// bounded memory fallback, in order after everything on disk; the reader
// delivers them from memory once it reached the end of the spool, and
// every tick of the sync goroutine (FsyncInterval) tries to move them to
// disk again, so the buffer resumes on its own as soon as the fault
// clears; appends meanwhile go straight to memory. Each failure is counted and logged with its cause (faults).
//
// Sequence numbers: every record has one, assigned once. A sequence number
// that is done (acknowledged, or dropped after it was assigned) is in
// acks until no segment at or below it remains, so after a restart the
// numbers neither on disk nor in acks are exactly the records lost to
// damage; recovery counts them (see scan).
type disk struct {
	cfg      Config
	opts     Options
	dlog     dropLog
	faults   *faults
	dir      string
	segBytes int64
	lock     *os.File // flock held while open

	mu        sync.Mutex
	segs      []*segment // ordered by first; may be empty
	head      *os.File   // the last segment, open for append; nil when sealed or not yet created
	nextSeq   uint64
	used      int64 // sum of segment sizes
	count     int   // records not done, memory fallback included
	unsynced  int64
	dirDirty  bool
	acks      ackSet
	acksDirty bool
	marked    uint64 // the next sequence number in the marker last written
	closed    bool
	scratch   []byte
	dec       decodeCache // for the reader (d.mu held)

	fb      [][]byte // memory fallback: encoded records, seqs ascending, all above the spool's
	fbBytes int64
	faulty  bool // the last spool write or segment creation failed

	rseg     *segment // segment being read; nil when there is none
	rr       *segReader
	inflight map[uint64]*diskItem
	retry    []*diskItem // nacked, sorted by seq
	data     waiter
	space    waiter

	kick    chan struct{}
	stop    chan struct{}
	loopWG  sync.WaitGroup
	fsyncs  atomic.Uint64 // fdatasync/fsync calls, for measurements
	fbTotal *metrics.Counter
}

type diskItem struct {
	msg  sinks.Message
	size int
	at   time.Time
	seg  *segment // nil: read from the memory fallback, on no disk
}

// Segment size bounds: a segment is at most max_bytes/8, maxSegBytes and
// an eighth of the space the spool can use (free space plus its own), but
// not below minSegBytes.
const (
	maxSegBytes = 32 << 20
	minSegBytes = 16 << 10
)

// Waiting for the spool's lock: auditd may start the plugin again while the
// previous one still shuts down (for up to plugin.ShutdownGrace, 0.9 s) and
// holds the lock, so openDisk tries again every lockRetry for up to
// lockWait before it gives up.
const (
	lockWait  = 3 * time.Second
	lockRetry = 200 * time.Millisecond
)

// openDisk opens the spool in cfg.Dir (see Open). When another open file
// holds the spool's lock (another process, or another Open in this one),
// it waits for up to lockWait (logged once) and then fails with an error
// that names the directory.
func openDisk(cfg Config, opts Options) (*disk, error) {
	if cfg.Dir == "" {
		return nil, errors.New("disk buffer: dir is empty")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	lock, err := lockSpool(cfg.Dir, opts)
	if err != nil {
		return nil, err
	}
	d := &disk{
		cfg: cfg, opts: opts, dir: cfg.Dir, lock: lock,
		faults:   newFaults(opts.Name, opts.Metrics, opts.Logger),
		inflight: map[uint64]*diskItem{},
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		fbTotal:  &metrics.Counter{},
	}
	d.segBytes = d.segLimit()
	drops, err := d.recover()
	if err != nil {
		d.closeFiles()
		return nil, err
	}
	if reg := opts.Metrics; reg != nil {
		l := metrics.Label("sink", opts.Name)
		d.fbTotal = reg.Counter("audisp_enrich_buffer_fallback_total", l, "Records a disk buffer kept in memory because the spool could not take them.")
		reg.Func("audisp_enrich_buffer_fallback_messages", l, "Records a disk buffer holds in memory only (spool unavailable).", func() float64 {
			d.mu.Lock()
			defer d.mu.Unlock()
			return float64(len(d.fb))
		})
	}
	report(&d.opts, &d.dlog, drops)
	d.loopWG.Add(1)
	go d.syncLoop()
	return d, nil
}

// lockSpool opens dir's lock file and takes its exclusive lock, waiting
// for it as openDisk says.
func lockSpool(dir string, opts Options) (*os.File, error) {
	lock, err := safeopen.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for try := 0; ; try++ {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return lock, nil
		case !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR):
			lock.Close()
			return nil, fmt.Errorf("disk buffer %s: lock: %w", dir, err)
		case !time.Now().Before(deadline):
			lock.Close()
			return nil, fmt.Errorf("disk buffer %s: in use by another process (still locked after waiting %v): %w", dir, lockWait, err)
		case try == 0:
			opts.Logger.Info("disk buffer in use by another process (a previous plugin still shutting down?); waiting for its lock", "dir", dir, "wait", lockWait)
		}
		time.Sleep(lockRetry)
	}
}

// segLimit is the size at which the head is sealed, from max_bytes and the
// space the file system has for the spool.
func (d *disk) segLimit() int64 {
	n := min(max(d.cfg.MaxBytes/8, minSegBytes), maxSegBytes)
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &st); err == nil {
		space := int64(st.Bavail)*int64(st.Bsize) + d.used
		n = min(n, max(space/8, minSegBytes))
	}
	return n
}

// recover loads the marker, scans every segment, truncates a damaged tail
// of the newest one, counts what damage lost, deletes finished segments
// and reopens the newest for appending when it has room.
func (d *disk) recover() ([]drop, error) {
	log := d.opts.Logger
	var drops []drop
	markerNext := uint64(0)
	markerFile := filepath.Join(d.dir, "acks")
	markerProblem := ""
	if b, err := safeopen.ReadFile(markerFile); err == nil {
		if markerNext, d.acks, err = decodeMarker(b); err != nil {
			markerProblem = "damaged"
			markerNext, d.acks = 0, ackSet{}
		}
	} else if os.IsNotExist(err) {
		markerProblem = "missing"
	} else {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	for _, e := range entries {
		if first, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			d.segs = append(d.segs, newSegment(d.dir, first))
		}
	}
	slices.SortFunc(d.segs, func(a, b *segment) int { return cmpU64(a.first, b.first) })
	if len(d.segs) > 0 {
		d.acks.pruneBelow(d.segs[0].first)
	} else {
		d.acks = ackSet{}
	}
	d.nextSeq = markerNext
	for i, seg := range d.segs {
		var bound uint64
		last := i == len(d.segs)-1
		if !last {
			bound = d.segs[i+1].first
		}
		dd, err := d.scan(seg, last, bound, markerNext)
		if err != nil {
			return nil, err
		}
		drops = append(drops, dd...)
	}
	kept := d.segs[:0]
	for _, seg := range d.segs {
		if seg.done == seg.count {
			if err := os.Remove(seg.path); err != nil {
				return nil, fmt.Errorf("disk buffer: %w", err)
			}
			d.dirDirty = true
			continue
		}
		kept = append(kept, seg)
	}
	d.segs = kept
	for _, seg := range d.segs {
		d.used += seg.size
		d.count += seg.count - seg.done
	}
	if markerProblem != "" && d.count > 0 {
		// Losing acks only means sending again: duplicates, not loss.
		log.Warn("ack marker "+markerProblem+"; every message in the spool will be sent again, those already delivered as duplicates",
			"file", markerFile, "messages", d.count)
	}
	if n := len(d.segs); n > 0 {
		if h := d.segs[n-1]; h.size < d.segBytes {
			f, err := safeopen.OpenFile(h.path, os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return nil, fmt.Errorf("disk buffer: %w", err)
			}
			d.head = f
		}
		d.rseg = d.segs[0]
	}
	d.acksDirty = true
	if d.count > 0 {
		log.Info("disk buffer recovered", "dir", d.dir, "messages", d.count, "bytes", d.used, "segments", len(d.segs))
	}
	return drops, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan reads one segment at open: counts records, marks acked ones done,
// remembers damaged regions, truncates a damaged tail of the last segment,
// and counts the records lost: sequence numbers missing between records,
// or between the last record and bound (the next segment's first; for the
// last segment the marker's next sequence number), that are not done.
// Damage at the end of the last segment counts at least one record.
func (d *disk) scan(seg *segment, last bool, bound, markerNext uint64) ([]drop, error) {
	log := d.opts.Logger
	var drops []drop
	st, err := os.Stat(seg.path)
	if err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	seg.size = st.Size()
	r, err := openSegReader(seg)
	if err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	defer r.close()
	hdr := make([]byte, len(segMagic))
	if n, _ := r.f.ReadAt(hdr, 0); n < len(segMagic) || string(hdr) != segMagic {
		if seg.size <= int64(len(segMagic)) && last {
			// Created but its header never reached the disk.
			if err := d.rewriteHeader(seg); err != nil {
				return nil, err
			}
			return nil, nil
		}
		log.Error("spool segment header damaged; reading records anyway", "file", seg.path)
	}
	expect := seg.first // the next sequence number if nothing is missing
	for {
		rec, from, skipped, incomplete, err := r.next(seg.size)
		if err != nil {
			return nil, fmt.Errorf("disk buffer: read %s: %w", seg.path, err)
		}
		if skipped > 0 && rec == nil {
			// Damage at the end of the segment, nothing valid after it.
			reason := ReasonCorrupt
			if last && (incomplete || d.allZero(r, from, seg.size)) {
				reason = ReasonTornTail
			}
			end := bound
			if last {
				end = max(markerNext, expect)
			}
			n := d.lost(expect, end)
			if last {
				n = max(n, 1) // the damaged bytes held at least part of one record
			}
			log.Error("spool segment end damaged", "file", seg.path, "offset", from,
				"bytes", skipped, "lost", n, "reason", reason)
			drops = append(drops, drop{n, reason})
			if last {
				// Cut it off so that appends continue after the last good record.
				if err := os.Truncate(seg.path, from); err != nil {
					return nil, fmt.Errorf("disk buffer: %w", err)
				}
				seg.size = from
				d.dirDirty = true // makes the sync loop fsync the directory too
			} else {
				seg.skip(from, skipped)
			}
			expect = end
			break
		}
		if rec == nil {
			break
		}
		seq := recSeq(rec)
		if n := d.lost(expect, seq); skipped > 0 || n > 0 {
			log.Error("spool records damaged or missing", "file", seg.path, "offset", from,
				"bytes", skipped, "lost", n)
			drops = append(drops, drop{n, ReasonCorrupt})
			if skipped > 0 {
				seg.skip(from, skipped)
			}
		}
		expect = max(expect, seq+1)
		if seg.count == 0 {
			seg.firstTime = recTime(rec)
		}
		seg.count++
		if d.acks.contains(seq) {
			seg.done++
		}
		if seq >= d.nextSeq {
			d.nextSeq = seq + 1
		}
	}
	switch {
	case !last && expect < bound:
		// Sequence numbers between this segment and the next, with no
		// damaged bytes to show for them: a segment file was removed.
		if n := d.lost(expect, bound); n > 0 {
			log.Error("spool records missing between segments", "file", seg.path, "next_first", bound, "lost", n)
			drops = append(drops, drop{n, ReasonCorrupt})
		}
	case last && expect < markerNext:
		// Numbered before the marker was written, neither on disk nor
		// done: records the process held in memory only when it died.
		if n := d.lost(expect, markerNext); n > 0 {
			log.Error("spool records held in memory were lost when the process died", "file", seg.path, "lost", n)
			drops = append(drops, drop{n, ReasonShutdown})
		}
	}
	if seg.first > d.nextSeq {
		d.nextSeq = seg.first
	}
	return drops, nil
}

// lost is the number of sequence numbers in [lo, hi) that are not done.
func (d *disk) lost(lo, hi uint64) int {
	if hi <= lo {
		return 0
	}
	return int(hi - lo - d.acks.countIn(lo, hi))
}

func (d *disk) allZero(r *segReader, from, to int64) bool {
	w, err := r.window(from, int(to-from), to)
	return err == nil && int64(len(w)) == to-from && len(bytes.Trim(w, "\x00")) == 0
}

func (d *disk) rewriteHeader(seg *segment) error {
	if err := os.WriteFile(seg.path, []byte(segMagic), 0o600); err != nil {
		return fmt.Errorf("disk buffer: %w", err)
	}
	seg.size = int64(len(segMagic))
	return nil
}

// createHead starts a new head segment whose first record is first. An
// empty last segment named at or above first is replaced.
func (d *disk) createHead(first uint64) error {
	if n := len(d.segs); n > 0 && d.segs[n-1].first >= first {
		if err := d.removeSeg(d.segs[n-1]); err != nil {
			return err
		}
	}
	d.segBytes = d.segLimit()
	seg := newSegment(d.dir, first)
	f, err := safeopen.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		d.faults.add(OpCreate, seg.path, err)
		return fmt.Errorf("disk buffer: %w", err)
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
		d.faults.add(OpCreate, seg.path, err)
		f.Close()
		os.Remove(seg.path)
		return fmt.Errorf("disk buffer: %w", err)
	}
	seg.size = int64(len(segMagic))
	d.head = f
	d.segs = append(d.segs, seg)
	d.used += seg.size
	d.dirDirty = true
	d.unsynced += seg.size
	return nil
}

// seal syncs and closes the head, so that sealed segments are durable; the
// next write creates a new one.
func (d *disk) seal() {
	if d.head == nil {
		return
	}
	if err := d.head.Sync(); err != nil {
		d.faults.add(OpRotate, d.headSeg().path, err)
	}
	d.fsyncs.Add(1)
	d.head.Close()
	d.head = nil
	d.unsynced = 0
}

func (d *disk) headSeg() *segment { return d.segs[len(d.segs)-1] }

// headFill returns the size and record count of the segment the next write
// goes to (a new one when there is no open head).
func (d *disk) headFill() (int64, int) {
	if d.head == nil {
		return int64(len(segMagic)), 0
	}
	h := d.headSeg()
	return h.size, h.count
}

// full reports whether adding n bytes holding k records would exceed a
// limit.
func (d *disk) full(n int64, k int) bool {
	return d.used+n > d.cfg.MaxBytes || (d.cfg.MaxEvents > 0 && d.count+k > d.cfg.MaxEvents)
}

// appendState collects the records one Append call writes at once.
type appendState struct {
	buf     []byte
	pending int // records encoded in buf
	drops   []drop
	err     error
}

func (d *disk) Append(msgs ...sinks.Message) error {
	d.mu.Lock()
	st := appendState{buf: d.scratch[:0]}
	if !d.faulty {
		st.drops = d.drain(st.drops) // what waits in memory goes first
	}
	for i := range msgs {
		if d.closed {
			st.err = ErrClosed // not a drop of the buffer's: see sinks.Buffer
			break
		}
		d.appendOne(&msgs[i], &st)
	}
	d.flush(&st)
	if cap(st.buf) <= 4<<20 {
		d.scratch = st.buf[:0]
	}
	if d.unsynced >= int64(d.cfg.FsyncBytes) {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	d.data.wake()
	d.mu.Unlock()
	report(&d.opts, &d.dlog, st.drops)
	return st.err
}

// appendOne encodes m into st.buf, first making room as the policy says.
// It is called with d.mu held and may release it while blocking.
func (d *disk) appendOne(m *sinks.Message, st *appendState) {
	at := time.Now()
	for {
		m.Seq = d.nextSeq
		start := len(st.buf)
		st.buf = appendRecord(st.buf, m, at)
		n := int64(len(st.buf) - start)
		if n+int64(len(segMagic)) > d.cfg.MaxBytes {
			st.buf = st.buf[:start]
			st.drops = appendDrop(st.drops, ReasonTooLarge)
			st.err = fmt.Errorf("message of %d bytes exceeds buffer max_bytes %d", n, d.cfg.MaxBytes)
			return
		}
		if size, k := d.headFill(); size+int64(start)+n > d.segBytes && k+st.pending > 0 {
			st.buf = st.buf[:start]
			d.flush(st)
			d.seal()
			continue
		}
		if !d.full(int64(len(st.buf)), st.pending+1) {
			d.nextSeq++
			st.pending++
			return
		}
		st.buf = st.buf[:start]
		switch {
		case d.cfg.WhenFull == DropNewest:
			st.drops = appendDrop(st.drops, ReasonDropNewest)
			st.err = fmt.Errorf("buffer full: message dropped (%s)", DropNewest)
			return
		case start > 0:
			d.flush(st) // what this call already encoded counts first
		case d.cfg.WhenFull == Block:
			ch := d.space.wait()
			d.mu.Unlock()
			<-ch
			d.mu.Lock()
			if d.closed {
				st.err = ErrClosed
				return
			}
		default:
			dd, err := d.dropOldest()
			if err != nil {
				st.drops = appendDrop(st.drops, ReasonTooLarge)
				st.err = err
				return
			}
			st.drops = append(st.drops, dd)
		}
	}
}

// flush writes the records collected in st to the spool, or to the memory
// fallback when the spool cannot take them or the fallback is not empty.
func (d *disk) flush(st *appendState) {
	if len(st.buf) == 0 {
		return
	}
	if len(d.fb) > 0 || d.write(st.buf, st.pending) != nil {
		if dropped := d.toFallback(st.buf); dropped > 0 {
			st.drops = append(st.drops, drop{dropped, ReasonIOError})
			st.err = errors.New("disk buffer: spool unavailable and memory fallback full")
		}
	}
	d.count += st.pending
	st.buf, st.pending = st.buf[:0], 0
}

// toFallback keeps copies of the records in buf in memory while they fit
// in FallbackBytes. The rest are dropped and marked done; it returns how
// many. The caller counts all of them in d.count.
func (d *disk) toFallback(buf []byte) int {
	dropped := 0
	for len(buf) > 0 {
		n, _ := recordAt(buf)
		rec := buf[:n]
		buf = buf[n:]
		if d.fbBytes+int64(n) > d.cfg.FallbackBytes {
			dropped++
			d.acks.add(recSeq(rec))
			d.acksDirty = true
			d.count--
			continue
		}
		d.fb = append(d.fb, bytes.Clone(rec))
		d.fbBytes += int64(n)
		d.fbTotal.Inc()
	}
	return dropped
}

// drain moves records from the memory fallback to the spool, oldest first,
// while the spool takes them, and returns drops to report (drop_oldest
// making room on disk for them).
func (d *disk) drain(drops []drop) []drop {
	d.reclaimHead()
	for len(d.fb) > 0 && !d.closed {
		size, k := d.headFill()
		var buf []byte
		i := 0
		for ; i < len(d.fb); i++ {
			r := d.fb[i]
			if i > 0 && size+int64(len(buf)+len(r)) > d.segBytes {
				break
			}
			buf = append(buf, r...)
		}
		if k > 0 && size+int64(len(buf)) > d.segBytes {
			d.seal()
			continue
		}
		if d.full(int64(len(buf)), 0) {
			if d.cfg.WhenFull != DropOldest {
				return drops // wait in memory for acks to free room
			}
			dd, err := d.dropOldest()
			if err != nil {
				return drops
			}
			drops = append(drops, dd)
			continue
		}
		if d.write(buf, i) != nil {
			return drops
		}
		for _, r := range d.fb[:i] {
			d.fbBytes -= int64(len(r))
		}
		d.fb = slices.Delete(d.fb, 0, i)
	}
	return drops
}

// write appends n encoded records to the head, creating it when there is
// none. On failure it cuts the file back so that no partial record stays
// in the middle of the segment; when that fails too, the head is sealed
// and the next write starts a new one (the partial record is then found
// at open, with no sequence number missing).
func (d *disk) write(buf []byte, n int) error {
	if d.head == nil {
		if err := d.createHead(recSeq(buf)); err != nil {
			d.faulty = true
			return err
		}
	}
	h := d.headSeg()
	if _, err := d.head.Write(buf); err != nil {
		d.faults.add(OpWrite, h.path, err)
		d.faulty = true
		if terr := d.head.Truncate(h.size); terr != nil {
			d.faults.add(OpWrite, h.path, terr)
			d.seal()
		}
		return fmt.Errorf("disk buffer: write %s: %w", h.path, err)
	}
	if d.faulty {
		d.faulty = false
		d.opts.Logger.Info("spool writable again", "file", h.path, "in_memory", len(d.fb))
	}
	if h.count == 0 {
		h.firstTime = recTime(buf)
	}
	h.size += int64(len(buf))
	h.count += n
	d.used += int64(len(buf))
	d.unsynced += int64(len(buf))
	return nil
}

// dropOldest deletes the oldest segment (sealing the head first when it is
// the only one), or when no segment holds records the oldest record of the
// memory fallback, and returns the drop to report.
func (d *disk) dropOldest() (drop, error) {
	if len(d.segs) == 1 && d.segs[0].count > d.segs[0].done {
		d.seal()
	}
	if len(d.segs) == 0 || d.segs[0].count == d.segs[0].done && len(d.segs) == 1 {
		if len(d.fb) == 0 {
			return drop{}, errors.New("disk buffer: no room even when empty")
		}
		r := d.fb[0]
		d.fb = d.fb[1:]
		d.fbBytes -= int64(len(r))
		d.acks.add(recSeq(r))
		d.acksDirty = true
		d.count--
		return drop{1, ReasonDropOldest}, nil
	}
	seg := d.segs[0]
	n := seg.count - seg.done
	for seq, it := range d.inflight {
		if it.seg == seg {
			delete(d.inflight, seq)
		}
	}
	d.retry = slices.DeleteFunc(d.retry, func(it *diskItem) bool { return it.seg == seg })
	seg.done = seg.count
	d.count -= n
	return drop{n, ReasonDropOldest}, d.removeSeg(seg)
}

// removeSeg deletes a segment whose records are all done (closing it first
// when it is the head) and forgets the acks below the oldest remaining.
func (d *disk) removeSeg(seg *segment) error {
	i := slices.Index(d.segs, seg)
	if i < 0 {
		return nil
	}
	if i == len(d.segs)-1 && d.head != nil {
		d.head.Close()
		d.head = nil
		d.unsynced = 0
	}
	if d.rseg == seg {
		d.rr.close()
		d.rr = nil
		d.rseg = nil
		if i+1 < len(d.segs) {
			d.rseg = d.segs[i+1]
		}
	}
	d.segs = slices.Delete(d.segs, i, i+1)
	d.used -= seg.size
	d.count -= seg.count - seg.done
	d.dirDirty = true
	if len(d.segs) > 0 {
		if d.acks.pruneBelow(d.segs[0].first) {
			d.acksDirty = true
		}
	}
	d.space.wake()
	if err := os.Remove(seg.path); err != nil {
		d.faults.add(OpRemove, seg.path, err)
		return fmt.Errorf("disk buffer: %w", err)
	}
	return nil
}

// reap deletes finished segments the reader has passed, then the head
// when reclaimHead says so.
func (d *disk) reap() {
	if d.rseg == nil {
		return
	}
	for _, seg := range slices.Clone(d.segs) {
		if seg.first >= d.rseg.first {
			break
		}
		if seg.done == seg.count {
			_ = d.removeSeg(seg) // counted and logged by removeSeg
		}
	}
	d.reclaimHead()
}

// reclaimHead deletes the only segment once all its records are done and
// it holds a quarter of a segment, is sealed, or the spool is failing (so
// a full file system gets its space back). The next write starts a new
// segment.
func (d *disk) reclaimHead() {
	if len(d.segs) != 1 {
		return
	}
	h := d.segs[0]
	if h.count == 0 || h.done != h.count || !(d.head == nil || d.faulty || h.size >= d.segBytes/4) {
		return
	}
	_ = d.removeSeg(h) // counted and logged by removeSeg
}

func (d *disk) ReadBatch(ctx context.Context, max, maxBytes int) ([]sinks.Message, error) {
	if max <= 0 {
		max = 1
	}
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, ErrClosed
		}
		// At most max, and no more than there are (the slice is returned
		// to the caller: not grown step by step).
		out := make([]sinks.Message, 0, min(max, d.count))
		var drops []drop
		size := 0
		fits := func(n int) bool { return len(out) == 0 || (len(out) < max && size+n <= maxBytes) }
		used := 0
		for _, it := range d.retry {
			if !fits(it.size) {
				break
			}
			d.inflight[it.msg.Seq] = it
			out = append(out, it.msg)
			size += it.size
			used++
		}
		d.retry = d.retry[used:]
		for len(out) < max {
			it, dd, err := d.readNext()
			drops = append(drops, dd...)
			if err != nil && len(out) == 0 {
				d.mu.Unlock()
				report(&d.opts, &d.dlog, drops)
				return nil, err
			}
			if err != nil {
				break // the error comes back at the next call
			}
			if it == nil {
				break
			}
			if !fits(it.size) {
				d.retry = append(d.retry, it) // unread seqs come after every retry
				break
			}
			d.inflight[it.msg.Seq] = it
			out = append(out, it.msg)
			size += it.size
		}
		var ch <-chan struct{}
		if len(out) == 0 {
			ch = d.data.wait()
		}
		d.mu.Unlock()
		report(&d.opts, &d.dlog, drops)
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// readNext returns the next unacked record after the read position: from
// the spool, then, past its end, from the memory fallback. It returns nil
// when there is nothing more.
func (d *disk) readNext() (*diskItem, []drop, error) {
	var drops []drop
	for {
		if d.rseg == nil {
			if len(d.segs) == 0 {
				return d.readFallback(), drops, nil
			}
			d.rseg = d.segs[0]
		}
		seg := d.rseg
		if d.rr == nil {
			r, err := openSegReader(seg)
			if err != nil {
				return nil, drops, fmt.Errorf("disk buffer: %w", err)
			}
			d.rr = r
		}
		rec, from, skipped, _, err := d.rr.next(seg.size)
		if err != nil {
			return nil, drops, fmt.Errorf("disk buffer: read %s: %w", seg.path, err)
		}
		if skipped > 0 && !seg.skipped(from, skipped) {
			// Damage that appeared after open: count the sequence numbers
			// it hides, up to the next record or the next segment.
			end := d.rr.expect + 1
			switch i := slices.Index(d.segs, seg); {
			case rec != nil:
				end = recSeq(rec)
			case i+1 < len(d.segs):
				end = d.segs[i+1].first
			}
			n := max(d.lost(d.rr.expect, end), 1)
			d.opts.Logger.Error("spool records damaged; skipping them", "file", seg.path, "offset", from, "bytes", skipped, "lost", n)
			drops = append(drops, drop{n, ReasonCorrupt})
			seg.skip(from, skipped)
			d.discount(seg, n)
		}
		if rec != nil {
			d.rr.expect = recSeq(rec) + 1
			if d.acks.contains(recSeq(rec)) {
				continue // acked before a restart; counted done at open
			}
			m, err := decodeRecord(rec, &d.dec)
			if err != nil {
				d.opts.Logger.Error("spool record undecodable; skipping it", "file", seg.path, "seq", recSeq(rec))
				drops = append(drops, drop{1, ReasonCorrupt})
				d.discount(seg, 1)
				continue
			}
			return &diskItem{msg: m, size: msgSize(&m), at: recTime(rec), seg: seg}, drops, nil
		}
		if seg == d.headSeg() {
			return d.readFallback(), drops, nil
		}
		i := slices.Index(d.segs, seg)
		d.rr.close()
		d.rr = nil
		d.rseg = d.segs[i+1]
		d.reap()
	}
}

// discount marks n records of seg done that the reader found lost.
func (d *disk) discount(seg *segment, n int) {
	n = min(n, seg.count-seg.done)
	seg.done += n
	d.count -= n
}

// readFallback takes the oldest record of the memory fallback, or nil.
func (d *disk) readFallback() *diskItem {
	for len(d.fb) > 0 {
		r := d.fb[0]
		d.fb = d.fb[1:]
		d.fbBytes -= int64(len(r))
		m, err := decodeRecord(r, &d.dec)
		if err != nil { // cannot happen: we encoded it
			d.opts.Logger.Error("memory fallback record undecodable; dropping it", "seq", recSeq(r))
			d.count--
			continue
		}
		return &diskItem{msg: m, size: msgSize(&m), at: recTime(r)}
	}
	return nil
}

func (d *disk) Ack(seqs ...uint64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0
	}
	n := 0
	for _, s := range seqs {
		it, ok := d.inflight[s]
		if !ok {
			continue
		}
		n++
		delete(d.inflight, s)
		if it.seg != nil {
			it.seg.done++
		}
		d.count--
		d.acks.add(s)
		d.acksDirty = true
	}
	d.reap()
	return n
}

func (d *disk) Nack(seqs ...uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range seqs {
		if it, ok := d.inflight[s]; ok {
			delete(d.inflight, s)
			d.retry = append(d.retry, it)
		}
	}
	slices.SortFunc(d.retry, func(a, b *diskItem) int { return cmpU64(a.msg.Seq, b.msg.Seq) })
	d.data.wake()
}

func (d *disk) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}

// Bytes is the size of the spool files plus the memory fallback.
func (d *disk) Bytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used + d.fbBytes
}

// OldestAge is exact for messages read since Open; for the rest it uses
// the append time of the record at the read position.
func (d *disk) OldestAge() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.count == 0 || d.closed {
		return 0
	}
	var oldest time.Time
	older := func(t time.Time) {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	for _, it := range d.inflight {
		older(it.at)
	}
	for _, it := range d.retry {
		older(it.at)
	}
	seg := d.rseg
	if seg == nil && len(d.segs) > 0 {
		seg = d.segs[0]
	}
	switch {
	case seg == nil:
	case d.rr != nil && d.rr.off < seg.size:
		if w, err := d.rr.window(d.rr.off, recHeader, seg.size); err == nil && len(w) >= recHeader {
			older(recTime(w))
		}
	case d.rr == nil && seg.count > 0:
		older(seg.firstTime)
	}
	if len(d.fb) > 0 {
		older(recTime(d.fb[0]))
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

func (d *disk) syncLoop() {
	defer d.loopWG.Done()
	t := time.NewTicker(d.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		case <-d.kick:
		}
		d.mu.Lock()
		drops := d.drain(nil)
		d.mu.Unlock()
		report(&d.opts, &d.dlog, drops)
		_ = d.sync() // failures are counted and logged by sync
	}
}

// sync makes appended data, directory changes and acks durable, in that
// order. Each failure is counted and logged with its cause (faults); what
// failed is tried again at the next call.
func (d *disk) sync() error {
	d.mu.Lock()
	f := d.head
	var path string
	if f != nil {
		path = d.headSeg().path
	}
	dirty := d.unsynced > 0
	d.unsynced = 0
	dirDirty := d.dirDirty
	d.dirDirty = false
	var marker []byte
	if d.acksDirty || d.marked != d.nextSeq {
		marker = encodeMarker(d.nextSeq, &d.acks)
		d.acksDirty = false
		d.marked = d.nextSeq
	}
	d.mu.Unlock()
	var errs []error
	if dirty && f != nil {
		if err := fdatasync(f); err != nil {
			d.mu.Lock()
			rotated := d.head != f // sealed (synced) and closed meanwhile
			if !rotated {
				d.unsynced++
			}
			d.mu.Unlock()
			if !rotated {
				d.faults.add(OpSync, path, err)
				errs = append(errs, err)
			}
		}
		d.fsyncs.Add(1)
	}
	if dirDirty {
		err := syncDir(d.dir)
		d.fsyncs.Add(1)
		if err != nil {
			d.faults.add(OpSync, d.dir, err)
			errs = append(errs, err)
			d.mu.Lock()
			d.dirDirty = true
			d.mu.Unlock()
		}
	}
	if marker != nil {
		err := writeMarker(d.dir, marker)
		d.fsyncs.Add(1)
		if err != nil {
			d.faults.add(OpMarker, filepath.Join(d.dir, "acks"), err)
			errs = append(errs, err)
			d.mu.Lock()
			d.acksDirty = true
			d.marked = 0
			d.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// Close stops the sync goroutine, moves what it can from memory to the
// spool, syncs everything and releases the directory. What is not acked
// stays for the next Open, except records held only in memory (the spool
// could not take them): those are counted as dropped (shutdown) and marked
// done, so that the next Open does not count them again.
func (d *disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	drops := d.drain(nil)
	d.closed = true
	lost := 0
	for _, r := range d.fb {
		d.acks.add(recSeq(r))
		lost++
	}
	d.fb, d.fbBytes = nil, 0
	for _, it := range d.inflight {
		if it.seg == nil {
			d.acks.add(it.msg.Seq)
			lost++
		}
	}
	for _, it := range d.retry {
		if it.seg == nil {
			d.acks.add(it.msg.Seq)
			lost++
		}
	}
	if lost > 0 {
		d.acksDirty = true
		d.count -= lost
		drops = append(drops, drop{lost, ReasonShutdown})
	}
	d.data.wake()
	d.space.wake()
	d.mu.Unlock()
	close(d.stop)
	d.loopWG.Wait()
	report(&d.opts, &d.dlog, drops)
	err := d.sync()
	d.closeFiles()
	d.dlog.flush(d.opts.Logger)
	d.faults.close()
	if reg := d.opts.Metrics; reg != nil {
		l := metrics.Label("sink", d.opts.Name)
		reg.Unregister("audisp_enrich_buffer_fallback_total", l)
		reg.Unregister("audisp_enrich_buffer_fallback_messages", l)
	}
	return err
}

func (d *disk) closeFiles() {
	if d.head != nil {
		d.head.Close()
	}
	d.rr.close()
	d.lock.Close() // releases the flock
}
