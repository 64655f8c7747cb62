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

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// disk is the durable Buffer: a directory of segment files written
// append-only, plus an ack marker. See docs/buffers.md for the design.
//
// Appends are written to the head segment with one write(2) per Append
// call under the lock, so they survive a process kill at once; a sync
// goroutine fdatasyncs the head at most every FsyncInterval (sooner when
// FsyncBytes are pending) and then rewrites the ack marker if acks
// changed. A segment file is deleted once every record in it was acked
// (or dropped) and the reader has passed it.
type disk struct {
	cfg      Config
	opts     Options
	dlog     dropLog
	dir      string
	segBytes int64
	lock     *os.File // flock held while open

	mu        sync.Mutex
	segs      []*segment // ordered by first; the last is the head
	head      *os.File   // head segment, opened for append
	nextSeq   uint64
	used      int64 // sum of segment sizes
	count     int   // records not done
	unsynced  int64
	dirDirty  bool
	acks      ackSet
	acksDirty bool
	closed    bool
	scratch   []byte

	rseg     *segment // segment being read
	rr       *segReader
	inflight map[uint64]*diskItem
	retry    []*diskItem // nacked, sorted by seq
	data     waiter
	space    waiter

	kick   chan struct{}
	stop   chan struct{}
	loopWG sync.WaitGroup
	fsyncs atomic.Uint64 // fdatasync/fsync calls, for measurements
}

type diskItem struct {
	msg  sinks.Message
	size int
	at   time.Time
	seg  *segment
}

const maxSegBytes = 32 << 20

func openDisk(cfg Config, opts Options) (*disk, error) {
	if cfg.Dir == "" {
		return nil, errors.New("disk buffer: dir is empty")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("disk buffer: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("disk buffer %s: in use by another process: %w", cfg.Dir, err)
	}
	d := &disk{
		cfg: cfg, opts: opts, dir: cfg.Dir, lock: lock,
		segBytes: min(max(cfg.MaxBytes/8, 1), maxSegBytes),
		inflight: map[uint64]*diskItem{},
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	drops, err := d.recover()
	if err != nil {
		d.closeFiles()
		return nil, err
	}
	report(&d.opts, &d.dlog, drops)
	d.loopWG.Add(1)
	go d.syncLoop()
	return d, nil
}

// recover loads the marker, scans every segment, truncates a torn tail,
// deletes finished segments and opens the head for appending.
func (d *disk) recover() ([]drop, error) {
	log := d.opts.Logger
	var drops []drop
	markerNext := uint64(0)
	if b, err := os.ReadFile(filepath.Join(d.dir, "acks")); err == nil {
		if markerNext, d.acks, err = decodeMarker(b); err != nil {
			// Losing acks only means sending again: duplicates, not loss.
			log.Error("ack marker damaged; unacknowledged state lost, messages will be sent again",
				"file", filepath.Join(d.dir, "acks"), "err", err)
			markerNext, d.acks = 0, ackSet{}
		}
	} else if !os.IsNotExist(err) {
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
		last := i == len(d.segs)-1
		dd, err := d.scan(seg, last)
		if err != nil {
			return nil, err
		}
		drops = append(drops, dd...)
	}
	// Delete what is finished, except the last segment, which names the
	// next seq.
	kept := d.segs[:0]
	for i, seg := range d.segs {
		if i < len(d.segs)-1 && seg.done == seg.count {
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
	if len(d.segs) > 0 {
		if h := d.segs[len(d.segs)-1]; h.size < d.segBytes {
			f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return nil, fmt.Errorf("disk buffer: %w", err)
			}
			d.head = f
		}
	}
	if d.head == nil {
		if err := d.createHead(); err != nil {
			return nil, err
		}
	}
	d.rseg = d.segs[0]
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
// records damaged regions, and truncates a damaged tail of the last
// segment.
func (d *disk) scan(seg *segment, last bool) ([]drop, error) {
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
	for {
		rec, from, skipped, incomplete, err := r.next(seg.size)
		if err != nil {
			return nil, fmt.Errorf("disk buffer: read %s: %w", seg.path, err)
		}
		if skipped > 0 && rec == nil && last {
			// Damage at the end of the file being appended to: cut it off
			// so that appends continue after the last good record.
			reason := ReasonCorrupt
			if incomplete || d.allZero(r, from, seg.size) {
				reason = ReasonTornTail
			}
			log.Error("spool tail damaged; truncating", "file", seg.path, "offset", from,
				"bytes", skipped, "reason", reason)
			drops = append(drops, drop{1, reason})
			if err := os.Truncate(seg.path, from); err != nil {
				return nil, fmt.Errorf("disk buffer: %w", err)
			}
			seg.size = from
			d.dirDirty = true // makes the sync loop fsync the directory too
			break
		}
		if skipped > 0 {
			log.Error("spool record damaged; skipping it", "file", seg.path, "offset", from, "bytes", skipped)
			drops = append(drops, drop{1, ReasonCorrupt})
			if seg.skips == nil {
				seg.skips = map[int64]int64{}
			}
			seg.skips[from] = from + skipped
		}
		if rec == nil {
			break
		}
		seq := recSeq(rec)
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
	if seg.first > d.nextSeq {
		d.nextSeq = seg.first
	}
	return drops, nil
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

// createHead starts a new head segment named after nextSeq.
func (d *disk) createHead() error {
	seg := newSegment(d.dir, d.nextSeq)
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("disk buffer: %w", err)
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
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

// rotate seals the head (synced, so sealed segments are always durable)
// and starts a new one.
func (d *disk) rotate() error {
	if err := d.head.Sync(); err != nil {
		return fmt.Errorf("disk buffer: sync %s: %w", d.headSeg().path, err)
	}
	d.fsyncs.Add(1)
	d.head.Close()
	d.head = nil
	d.unsynced = 0
	return d.createHead()
}

func (d *disk) headSeg() *segment { return d.segs[len(d.segs)-1] }

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
	for i := range msgs {
		if d.closed {
			st.drops = append(st.drops, drop{len(msgs) - i, ReasonClosed})
			st.err = ErrClosed
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
		if h := d.headSeg(); h.size+int64(start)+n > d.segBytes && h.count+st.pending > 0 {
			st.buf = st.buf[:start]
			d.flush(st)
			if err := d.rotate(); err != nil {
				st.drops = appendDrop(st.drops, ReasonIOError)
				st.err = err
				return
			}
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
				st.drops = appendDrop(st.drops, ReasonClosed)
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

// flush writes the records collected in st.
func (d *disk) flush(st *appendState) {
	if len(st.buf) == 0 {
		return
	}
	if err := d.write(st.buf, st.pending); err != nil {
		st.drops = append(st.drops, drop{st.pending, ReasonIOError})
		st.err = err
	}
	st.buf, st.pending = st.buf[:0], 0
}

// write appends n encoded records to the head. On failure it cuts the file
// back so that no partial record stays in the middle of the segment.
func (d *disk) write(buf []byte, n int) error {
	h := d.headSeg()
	if _, err := d.head.Write(buf); err != nil {
		if terr := d.head.Truncate(h.size); terr != nil {
			// The head may now hold a partial record; start a new one.
			d.opts.Logger.Error("spool write failed and could not be undone", "file", h.path, "err", terr)
			if rerr := d.rotate(); rerr != nil {
				d.opts.Logger.Error("spool rotation failed", "err", rerr)
			}
		}
		return fmt.Errorf("disk buffer: write %s: %w", h.path, err)
	}
	if h.count == 0 {
		h.firstTime = recTime(buf)
	}
	h.size += int64(len(buf))
	h.count += n
	d.used += int64(len(buf))
	d.count += n
	d.unsynced += int64(len(buf))
	return nil
}

// dropOldest deletes the oldest segment (sealing the head first when it is
// the only one) and returns the drop to report.
func (d *disk) dropOldest() (drop, error) {
	if len(d.segs) == 1 {
		if d.headSeg().count == 0 {
			return drop{}, errors.New("disk buffer: no room even when empty")
		}
		if err := d.rotate(); err != nil {
			return drop{}, err
		}
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

// removeSeg deletes a finished segment and forgets its acks.
func (d *disk) removeSeg(seg *segment) error {
	i := slices.Index(d.segs, seg)
	if i < 0 || i == len(d.segs)-1 {
		return nil
	}
	if d.rseg == seg {
		d.rr.close()
		d.rr = nil
		d.rseg = d.segs[i+1]
	}
	d.segs = slices.Delete(d.segs, i, i+1)
	d.used -= seg.size
	d.count -= seg.count - seg.done
	d.dirDirty = true
	if d.acks.pruneBelow(d.segs[0].first) {
		d.acksDirty = true
	}
	d.space.wake()
	if err := os.Remove(seg.path); err != nil {
		return fmt.Errorf("disk buffer: %w", err)
	}
	return nil
}

// reap deletes finished segments the reader has passed.
func (d *disk) reap() {
	for _, seg := range slices.Clone(d.segs) {
		if seg.first >= d.rseg.first {
			return
		}
		if seg.done == seg.count {
			if err := d.removeSeg(seg); err != nil {
				d.opts.Logger.Error("spool segment not removed", "err", err)
			}
		}
	}
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
		var out []sinks.Message
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

// readNext returns the next unacked record after the read position, or nil
// at the end of the head.
func (d *disk) readNext() (*diskItem, []drop, error) {
	var drops []drop
	for {
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
		if skipped > 0 {
			if end, ok := seg.skips[from]; !ok || end != from+skipped {
				d.opts.Logger.Error("spool record damaged; skipping it", "file", seg.path, "offset", from, "bytes", skipped)
				drops = append(drops, drop{1, ReasonCorrupt})
				if seg.skips == nil {
					seg.skips = map[int64]int64{}
				}
				seg.skips[from] = from + skipped
			}
		}
		if rec != nil {
			if d.acks.contains(recSeq(rec)) {
				continue // acked before a restart; counted done at open
			}
			m, err := decodeRecord(rec)
			if err != nil {
				d.opts.Logger.Error("spool record undecodable; skipping it", "file", seg.path, "seq", recSeq(rec))
				drops = append(drops, drop{1, ReasonCorrupt})
				seg.done++
				d.count--
				continue
			}
			return &diskItem{msg: m, size: msgSize(&m), at: recTime(rec), seg: seg}, drops, nil
		}
		if seg == d.headSeg() {
			return nil, drops, nil
		}
		i := slices.Index(d.segs, seg)
		d.rr.close()
		d.rr = nil
		d.rseg = d.segs[i+1]
		d.reap()
	}
}

func (d *disk) Ack(seqs ...uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for _, s := range seqs {
		it, ok := d.inflight[s]
		if !ok {
			continue
		}
		delete(d.inflight, s)
		it.seg.done++
		d.count--
		d.acks.add(s)
		d.acksDirty = true
	}
	d.reap()
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

func (d *disk) Bytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used
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
	if d.rr != nil && d.rr.off < d.rseg.size {
		if w, err := d.rr.window(d.rr.off, recHeader, d.rseg.size); err == nil && len(w) >= recHeader {
			older(recTime(w))
		}
	} else if d.rr == nil && d.rseg.count > 0 {
		older(d.rseg.firstTime)
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
		if err := d.sync(); err != nil {
			d.opts.Logger.Error("spool sync failed; data since the last sync may be lost on a host crash", "dir", d.dir, "err", err)
		}
	}
}

// sync makes appended data, directory changes and acks durable, in that
// order.
func (d *disk) sync() error {
	d.mu.Lock()
	f := d.head
	dirty := d.unsynced > 0
	d.unsynced = 0
	dirDirty := d.dirDirty
	d.dirDirty = false
	var marker []byte
	if d.acksDirty {
		marker = encodeMarker(d.nextSeq, &d.acks)
		d.acksDirty = false
	}
	d.mu.Unlock()
	var errs []error
	if dirty && f != nil {
		if err := fdatasync(f); err != nil {
			d.mu.Lock()
			rotated := d.head != f // rotate synced and closed it
			d.mu.Unlock()
			if !rotated {
				errs = append(errs, err)
			}
		}
		d.fsyncs.Add(1)
	}
	if dirDirty {
		if dir, err := os.Open(d.dir); err == nil {
			errs = append(errs, dir.Sync())
			dir.Close()
			d.fsyncs.Add(1)
		} else {
			errs = append(errs, err)
		}
	}
	if marker != nil {
		errs = append(errs, writeMarker(d.dir, marker))
		d.fsyncs.Add(1)
	}
	return errors.Join(errs...)
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

// Close stops the sync goroutine, syncs everything and releases the
// directory. What is not acked stays for the next Open.
func (d *disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.data.wake()
	d.space.wake()
	d.mu.Unlock()
	close(d.stop)
	d.loopWG.Wait()
	err := d.sync()
	d.closeFiles()
	d.dlog.flush(d.opts.Logger)
	return err
}

func (d *disk) closeFiles() {
	if d.head != nil {
		d.head.Close()
	}
	d.rr.close()
	d.lock.Close() // releases the flock
}
