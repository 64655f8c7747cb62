package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Disk faults on a real file system: each test mounts its own small tmpfs
// (size= for a full disk, nr_inodes= for inode exhaustion) under
// t.TempDir() and unmounts it in cleanup. They need root (CAP_SYS_ADMIN)
// and skip with a message when mounting is impossible, and under -short.
//
// Every test counts, by message value, what was delivered (and how often)
// and what OnDrop reported, and asserts exact figures; the fault is then
// cleared without reopening the buffer and more messages must go through.

// mountTmpfs mounts a tmpfs with opts (e.g. "size=64k") and returns its
// root.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	testsupport.SkipShort(t, "mounts a tmpfs for a disk-fault test (root)")
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): disk-fault tests need root (CAP_SYS_ADMIN)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillBlocks writes a file until the file system is full and returns its
// path (remove it to free the space).
func fillBlocks(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return p
		}
	}
}

// fillInodes creates empty files until no inode is left and returns them.
func fillInodes(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("inode%d", i))
		f, err := os.Create(p)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("using up inodes: %v", err)
			}
			return files
		}
		f.Close()
		files = append(files, p)
	}
}

// tally counts deliveries by message value.
type tally struct {
	got map[int]int
}

func (ty *tally) add(t *testing.T, ms []sinks.Message) {
	if ty.got == nil {
		ty.got = map[int]int{}
	}
	for _, m := range ms {
		ty.got[valueN(t, m)]++
	}
}

// check asserts that exactly the values in want were delivered, each
// dups+1 times for those in dup and once for the rest.
func (ty *tally) check(t *testing.T, want []int, dup map[int]bool) {
	t.Helper()
	var missing, extra []int
	dups := 0
	for _, v := range want {
		switch n := ty.got[v]; {
		case n == 0:
			missing = append(missing, v)
		case n > 1 && !dup[v]:
			dups += n - 1
		case n != 2 && dup[v]:
			t.Errorf("message %d delivered %d times, want 2", v, n)
		}
	}
	for v := range ty.got {
		if !slices.Contains(want, v) {
			extra = append(extra, v)
		}
	}
	if len(missing) > 0 || len(extra) > 0 || dups > 0 {
		t.Fatalf("delivered %d distinct: %d missing (e.g. %v), %d unexpected (e.g. %v), %d unexpected duplicates",
			len(ty.got), len(missing), head(missing), len(extra), head(extra), dups)
	}
}

func head(v []int) []int {
	slices.Sort(v)
	return v[:min(len(v), 5)]
}

// drain reads and acks until nothing comes for 100 ms.
func (ty *tally) drain(t *testing.T, b Buffer) {
	t.Helper()
	ty.add(t, readAll(t, b, true))
}

// waitFallbackEmpty waits until the disk buffer moved its memory fallback
// to disk.
func waitFallbackEmpty(t *testing.T, b Buffer) {
	t.Helper()
	d := b.(*disk)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		n, faulty := len(d.fb), d.faulty
		d.mu.Unlock()
		if n == 0 && !faulty {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the memory fallback was not written to disk within 10 s after the fault cleared")
}

func openFault(t *testing.T, cfg Config, dr *drops, log *slog.Logger) Buffer {
	t.Helper()
	b, err := Open(cfg, Options{Name: "fault", OnDrop: dr.add, Logger: log})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func faultCfg(dir string) Config {
	return Config{Type: TypeDisk, Dir: filepath.Join(dir, "spool"), FsyncInterval: 20 * time.Millisecond}
}

func appendRange(t *testing.T, b Buffer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := b.Append(msg(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// resumeAndRestart checks the recovery from a cleared fault without a
// reopen: the memory fallback reaches the disk, messages from..to are
// appended, and after a restart messages 0..to are delivered exactly once
// with no drop. It returns the reopened buffer and the deliveries.
func resumeAndRestart(t *testing.T, b Buffer, cfg Config, dr *drops, from, to int) (Buffer, *tally) {
	t.Helper()
	waitFallbackEmpty(t, b)
	appendRange(t, b, from, to)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openFault(t, cfg, dr, nil)
	ty := &tally{}
	ty.drain(t, b)
	ty.check(t, span(0, to), nil)
	if dr.m != nil {
		t.Fatalf("drops %v", dr.m)
	}
	return b, ty
}

// TestDiskFaultENOSPC: the file system fills up under a buffer with no
// reader. The messages wait in the memory fallback, are written to disk as
// soon as space returns (no reopen), and survive a restart: nothing lost,
// nothing duplicated. Then, disk full again, a reader is served from
// memory while nothing can be written.
func TestDiskFaultENOSPC(t *testing.T) {
	fs := mountTmpfs(t, "size=1m")
	dr := &drops{}
	cfg := faultCfg(fs)
	b := openFault(t, cfg, dr, nil)
	appendRange(t, b, 0, 100)
	filler := fillBlocks(t, fs)
	appendRange(t, b, 100, 1000) // about 150 KB with no space left
	d := b.(*disk)
	if n := d.faults.count(OpWrite, "ENOSPC") + d.faults.count(OpCreate, "ENOSPC"); n == 0 {
		t.Fatal("no ENOSPC fault counted while the disk was full")
	}
	if b.Len() != 1000 || dr.m != nil {
		t.Fatalf("Len %d drops %v while the disk was full, want 1000 and none", b.Len(), dr.m)
	}
	os.Remove(filler)
	b, ty := resumeAndRestart(t, b, cfg, dr, 1000, 1100)

	// Full again; a reader now drains from memory what the disk cannot take.
	filler = fillBlocks(t, fs)
	appendRange(t, b, 1100, 1600)
	ty.drain(t, b)
	os.Remove(filler)
	appendRange(t, b, 1600, 1700)
	ty.drain(t, b)
	ty.check(t, span(0, 1700), nil)
	if dr.m != nil {
		t.Fatalf("drops %v", dr.m)
	}
	t.Logf("sent 1700, delivered 1700, dropped 0, duplicates 0; faults write/ENOSPC %d create/ENOSPC %d",
		d.faults.count(OpWrite, "ENOSPC"), d.faults.count(OpCreate, "ENOSPC"))
}

// TestDiskFaultFallbackFull: with the disk full and a 4 KiB memory
// fallback, what does not fit is dropped as io_error, exactly; once space
// returns, later messages are kept again.
func TestDiskFaultFallbackFull(t *testing.T) {
	fs := mountTmpfs(t, "size=256k")
	dr := &drops{}
	cfg := faultCfg(fs)
	cfg.FallbackBytes = 4096
	b := openFault(t, cfg, dr, nil)
	filler := fillBlocks(t, fs)
	var failed []int
	for i := range 300 {
		if b.Append(msg(i)) != nil {
			failed = append(failed, i)
		}
	}
	kept := 300 - len(failed)
	if dr.get(ReasonIOError) != len(failed) || len(failed) == 0 || kept == 0 {
		t.Fatalf("io_error drops %d, failed appends %d, kept %d", dr.get(ReasonIOError), len(failed), kept)
	}
	if b.Len() != kept {
		t.Fatalf("Len %d, want %d", b.Len(), kept)
	}
	os.Remove(filler)
	waitFallbackEmpty(t, b)
	appendRange(t, b, 300, 400)
	var ty tally
	ty.drain(t, b)
	var want []int
	for i := range 400 {
		if !slices.Contains(failed, i) {
			want = append(want, i)
		}
	}
	ty.check(t, want, nil)
	t.Logf("sent 400, delivered %d, dropped io_error %d, duplicates 0", len(want), dr.get(ReasonIOError))
}

// TestDiskFaultInodes: no inode is left when the head segment is full and
// a new one is due. Creation fails (counted create/ENOSPC), the messages
// wait in memory, and the buffer resumes on disk once inodes are freed:
// no reopen, nothing lost or duplicated, also across a restart.
func TestDiskFaultInodes(t *testing.T) {
	fs := mountTmpfs(t, "size=4m,nr_inodes=64")
	dr := &drops{}
	cfg := faultCfg(fs)
	cfg.MaxBytes = 256 << 10 // segments of 32 KiB
	b := openFault(t, cfg, dr, nil)
	appendRange(t, b, 0, 10)
	hogs := fillInodes(t, fs)
	appendRange(t, b, 10, 600) // about 90 KB: two or three new segments due
	d := b.(*disk)
	if d.faults.count(OpCreate, "ENOSPC") == 0 {
		t.Fatal("no create/ENOSPC fault counted with no inode left")
	}
	d.mu.Lock()
	inMem := len(d.fb)
	d.mu.Unlock()
	if inMem == 0 {
		t.Fatal("nothing went to the memory fallback")
	}
	for _, h := range hogs {
		os.Remove(h)
	}
	resumeAndRestart(t, b, cfg, dr, 600, 700)
	t.Logf("sent 700, delivered 700, dropped 0, duplicates 0; %d held in memory at the peak; faults create/ENOSPC %d",
		inMem, d.faults.count(OpCreate, "ENOSPC"))
}

// TestDiskFaultTinyFS: the file system (12 KiB) is smaller than one
// segment (16 KiB). A fully acknowledged head is deleted as soon as the
// disk refuses data, so a stream with an acking reader goes through with
// nothing lost, and the space is given back.
func TestDiskFaultTinyFS(t *testing.T) {
	fs := mountTmpfs(t, "size=12k")
	dr := &drops{}
	cfg := faultCfg(fs)
	b := openFault(t, cfg, dr, nil)
	var ty tally
	const rounds, per = 40, 60 // 60 messages (about 9 KB) per round
	for r := range rounds {
		appendRange(t, b, r*per, (r+1)*per)
		ty.drain(t, b)
	}
	ty.check(t, span(0, rounds*per), nil)
	if dr.m != nil {
		t.Fatalf("drops %v", dr.m)
	}
	if b.Len() != 0 {
		t.Fatalf("Len %d after everything was acknowledged", b.Len())
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(fs, &st); err != nil {
		t.Fatal(err)
	}
	d := b.(*disk)
	t.Logf("sent %d, delivered %d, dropped 0, duplicates 0; faults write/ENOSPC %d create/ENOSPC %d; %d of %d blocks free at the end",
		rounds*per, rounds*per, d.faults.count(OpWrite, "ENOSPC"), d.faults.count(OpCreate, "ENOSPC"), st.Bfree, st.Blocks)
	if d.faults.count(OpWrite, "ENOSPC")+d.faults.count(OpCreate, "ENOSPC") == 0 {
		t.Fatal("the file system never filled: the test did not test anything")
	}
}

// segRecords returns the byte offsets of the records in a segment file.
func segRecords(t *testing.T, file string) []int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := len(segMagic); off < len(data); off += recHeader + int(le32(data[off:])) {
		offs = append(offs, off)
	}
	return offs
}

// TestDiskFaultTruncated cuts a segment in the middle of a record, in an
// older segment and in the newest one. The drop count is the number of
// records lost (told by the next segment's first sequence number, or the
// marker's next one), not 1; everything else is delivered once, and new
// messages go through.
func TestDiskFaultTruncated(t *testing.T) {
	for _, which := range []string{"older", "newest"} {
		t.Run(which, func(t *testing.T) {
			fs := mountTmpfs(t, "size=4m")
			dr := &drops{}
			cfg := faultCfg(fs)
			cfg.MaxBytes = 128 << 10 // 16 KiB segments, about 110 messages each
			b := openFault(t, cfg, dr, nil)
			const n = 500
			appendRange(t, b, 0, n)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			files := segFiles(t, cfg.Dir)
			if len(files) < 3 {
				t.Fatalf("%d segments, want at least 3", len(files))
			}
			file := files[1]
			if which == "newest" {
				file = files[len(files)-1]
			}
			first, _ := parseSegName(filepath.Base(file))
			offs := segRecords(t, file)
			cut := len(offs) / 3
			if err := os.Truncate(file, int64(offs[cut]+recHeader+5)); err != nil {
				t.Fatal(err)
			}
			lostFrom, lostTo := int(first)+cut, int(first)+len(offs) // values equal seqs here
			b = openFault(t, cfg, dr, nil)
			reason := ReasonCorrupt
			if which == "newest" {
				reason = ReasonTornTail
			}
			if got := dr.get(reason); got != lostTo-lostFrom {
				t.Fatalf("%s drops %d, want %d (records %d..%d)", reason, got, lostTo-lostFrom, lostFrom, lostTo-1)
			}
			appendRange(t, b, n, n+50)
			var ty tally
			ty.drain(t, b)
			want := append(span(0, lostFrom), span(lostTo, n+50)...)
			ty.check(t, want, nil)
			if len(dr.m) != 1 {
				t.Fatalf("drops %v", dr.m)
			}
			t.Logf("sent %d, delivered %d, dropped %s %d, duplicates 0", n+50, len(want), reason, lostTo-lostFrom)
		})
	}
}

// TestDiskFaultMarkerDeleted: the ack marker is deleted while the buffer
// is closed. Reopening logs how many messages will be sent again;
// exactly the acknowledged ones come twice, nothing is lost.
func TestDiskFaultMarkerDeleted(t *testing.T) {
	fs := mountTmpfs(t, "size=4m")
	dr := &drops{}
	cfg := faultCfg(fs)
	b := openFault(t, cfg, dr, nil)
	appendRange(t, b, 0, 100)
	var ty tally
	batch, err := b.ReadBatch(context.Background(), 60, 1<<20)
	if err != nil || len(batch) != 60 {
		t.Fatalf("read %d: %v", len(batch), err)
	}
	b.Ack(seqs(batch)...)
	ty.add(t, batch)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cfg.Dir, "acks")); err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuf
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	b = openFault(t, cfg, dr, log)
	if !strings.Contains(logBuf.String(), "ack marker missing") || !strings.Contains(logBuf.String(), "messages=100") {
		t.Fatalf("no log line saying 100 messages will be sent again:\n%s", logBuf.String())
	}
	ty.drain(t, b)
	dup := map[int]bool{}
	for i := range 60 {
		dup[i] = true
	}
	ty.check(t, span(0, 100), dup)
	if dr.m != nil {
		t.Fatalf("drops %v", dr.m)
	}
	t.Logf("sent 100, delivered 100, dropped 0, duplicates 60 (the acknowledged ones, announced in the log)")
}

// TestDiskFaultShutdownInMemory: messages held only in memory when the
// buffer closes (the disk is full) are counted as shutdown drops, once:
// reopening does not count them again, and what was on disk is kept.
func TestDiskFaultShutdownInMemory(t *testing.T) {
	fs := mountTmpfs(t, "size=256k")
	dr := &drops{}
	cfg := faultCfg(fs)
	b := openFault(t, cfg, dr, nil)
	appendRange(t, b, 0, 20)
	filler := fillBlocks(t, fs)
	appendRange(t, b, 20, 120)
	d := b.(*disk)
	d.mu.Lock()
	onDisk := d.count - len(d.fb) // the head's last page may have taken a few
	d.mu.Unlock()
	batch, err := b.ReadBatch(context.Background(), onDisk+10, 1<<20) // then 10 from memory
	if err != nil || !slices.Equal(values(t, batch), span(0, onDisk+10)) {
		t.Fatalf("read %v: %v", values(t, batch), err)
	}
	b.Ack(seqs(batch[onDisk : onDisk+5])...) // 5 read from memory are acknowledged, 5 stay in flight
	if err := b.Close(); err != nil {
		t.Logf("close: %v (the disk is full)", err)
	}
	want := 5 + 120 - onDisk - 10
	if got := dr.get(ReasonShutdown); got != want {
		t.Fatalf("shutdown drops %d, want %d (5 in flight + %d in memory)", got, want, want-5)
	}
	os.Remove(filler)
	b = openFault(t, cfg, dr, nil)
	var ty tally
	ty.drain(t, b)
	ty.check(t, span(0, onDisk), nil)
	if dr.get(ReasonShutdown) != want || len(dr.m) != 1 {
		t.Fatalf("after reopen: drops %v", dr.m)
	}
	t.Logf("sent 120, delivered %d (%d after the restart), dropped shutdown %d, duplicates 0", onDisk+5, onDisk, want)
}

// syncBuf is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDiskFaultEMFILE: the process has no file descriptor left when the
// first segment is due (a rotation reuses the descriptor of the segment it
// closes). Creation fails with EMFILE (counted and named), the messages
// wait in memory, and the buffer resumes once descriptors are available
// again, without a reopen.
func TestDiskFaultEMFILE(t *testing.T) {
	testsupport.SkipShort(t, "lowers the process descriptor limit to make segment creation fail (disk-fault test)")
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	dr := &drops{}
	cfg := faultCfg(t.TempDir())
	cfg.MaxBytes = 128 << 10 // 16 KiB segments
	b := openFault(t, cfg, dr, nil)
	low := lim
	low.Cur = 64
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var hogs []*os.File // take every descriptor left under the limit
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		hogs = append(hogs, f)
	}
	appendRange(t, b, 0, 400)
	for _, f := range hogs {
		f.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	d := b.(*disk)
	if d.faults.count(OpCreate, "EMFILE") == 0 {
		t.Fatal("no create/EMFILE fault counted with no descriptor left")
	}
	resumeAndRestart(t, b, cfg, dr, 400, 450)
	t.Logf("sent 450, delivered 450, dropped 0, duplicates 0; faults create/EMFILE %d", d.faults.count(OpCreate, "EMFILE"))
}
