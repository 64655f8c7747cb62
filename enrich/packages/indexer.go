package packages

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Stats describe the index (packages status, /metrics).
type Stats struct {
	Manager  string
	Packages int
	// Files are the executables and libraries in the index; Owned the
	// other package files (known by path only).
	Files, Owned int
	// Pending files wait for hashing; Modified files failed the package
	// database's digest on disk; Unreadable could not be hashed.
	Pending, Modified, Unreadable int
	// StoreBad counts the lines of packages.idx that could not be read
	// (Inspect): their files are hashed again and the file rewritten at
	// the next refresh.
	StoreBad int
	// Hashed and BytesHashed count the hashing done by this process;
	// Reused the files taken from the persisted hashes.
	Hashed, BytesHashed, Reused int64
	// LiveBytes is the memory of the live index's per-file tables.
	LiveBytes int
	// LastRefresh is when the last refresh finished (zero before).
	LastRefresh time.Time
	Complete    bool
}

// Index keeps the live index of package files: a goroutine reads the
// package database, hashes the executables and libraries it lists (at low
// CPU and I/O priority, rate limited, never on the event path), persists
// the hashes in StateDir and publishes immutable snapshots that lookups
// read without locks.
type Index struct {
	cfg  Config
	log  *slog.Logger
	m    *indexMetrics
	cur  atomic.Pointer[snapshot]
	kick chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed when the first complete snapshot is out
	broken chan struct{} // closed when the first database read failed
	dbErr  error         // why; written before broken is closed
	full   atomic.Bool   // hash at full speed (replay)

	hashed, bytesHashed, reused atomic.Int64
	modified, unreadable        atomic.Int64
	owned                       atomic.Int64
	lastRefresh                 atomic.Int64 // unix ns
	progress                    atomic.Pointer[func(done, total int)]
}

// OpenIndex starts the index goroutine, with its metrics in reg. It
// returns at once; lookups say unindexed until the first snapshot is out.
func OpenIndex(cfg Config, log *slog.Logger, reg *metrics.Registry) *Index {
	x := &Index{cfg: cfg, log: log, m: newIndexMetrics(reg), kick: make(chan struct{}, 1), done: make(chan struct{}), ready: make(chan struct{}), broken: make(chan struct{})}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	go x.run()
	return x
}

// Close stops the goroutine (a file being hashed is abandoned; its hash is
// taken again after the next start) and waits for it.
func (x *Index) Close() {
	x.cancel()
	<-x.done
}

// Wait hashes at full speed until the index is complete, the package
// database could not be read (the error says why) or ctx is done;
// progress, when not nil, is called from the index goroutine after each
// file hashed. It is for replay, which judges events only after the index
// is built.
func (x *Index) Wait(ctx context.Context, progress func(done, total int)) error {
	if progress != nil {
		x.progress.Store(&progress)
		defer x.progress.Store(nil)
	}
	x.full.Store(true)
	defer x.full.Store(false)
	select {
	case <-x.ready:
		return nil
	case <-x.broken:
		return x.dbErr
	case <-x.done:
		return errors.New("packages: index stopped before it was complete")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Refresh asks for a refresh soon (a file changed since it was indexed).
// It never blocks.
func (x *Index) Refresh() {
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// Stats returns the current figures.
func (x *Index) Stats() Stats {
	st := Stats{
		Hashed: x.hashed.Load(), BytesHashed: x.bytesHashed.Load(), Reused: x.reused.Load(),
		Modified: int(x.modified.Load()), Unreadable: int(x.unreadable.Load()), Owned: int(x.owned.Load()),
	}
	if t := x.lastRefresh.Load(); t > 0 {
		st.LastRefresh = time.Unix(0, t)
	}
	if s := x.cur.Load(); s != nil {
		st.Manager, st.Packages, st.Files, st.Pending = s.manager, len(s.results), len(s.files), s.pending
		st.LiveBytes, st.Complete = s.liveBytes(), s.complete
	}
	return st
}

func (x *Index) run() {
	defer close(x.done)
	runtime.LockOSThread() // the priorities below are the thread's
	lowerPriority()
	t := time.NewTicker(x.cfg.Refresh)
	defer t.Stop()
	var (
		db      *database
		stamp   [8]fileKey
		dbRead  int64
		logOnce = true
	)
	// A refresh (a stat of every package file, and hashing what changed)
	// runs at the start, when the database changed, and when asked for
	// (Refresh); otherwise a tick costs a few stats of the database files.
	kicked := true
	for {
		changed := false
		if st := x.dbStamp(); db == nil || st != stamp {
			d, errs, err := readDB(x.cfg)
			switch {
			case err != nil:
				if db == nil && logOnce {
					x.dbErr = err
					close(x.broken)
				}
				if logOnce {
					x.log.Error("packages: cannot read the package database; every hash stays unindexed", "err", err)
					logOnce = false
				}
			default:
				for _, e := range errs {
					x.log.Warn("packages: bad line in the package database", "err", e)
				}
				x.m.badLines.Add(uint64(d.badLines))
				db, stamp, dbRead, logOnce, changed = d, st, time.Now().UnixNano(), true, true
			}
		}
		if db != nil && (changed || kicked) {
			x.refresh(db, dbRead)
		}
		kicked = false
		select {
		case <-x.ctx.Done():
			return
		case <-t.C:
		case <-x.kick:
			kicked = true
		}
	}
}

// lowerPriority gives the calling thread nice 19 and the idle I/O class,
// so hashing yields to everything else on the machine. Failures are
// ignored (the rate limit still holds).
func lowerPriority() {
	tid := unix.Gettid()
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
	const ioprioWhoProcess, ioprioClassIdle, ioprioClassShift = 1, 3, 13
	_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShift)
}

// dbFiles are the files whose change means the package database changed
// (for dpkg: the diversions too, which dpkg-divert changes alone; for rpm:
// the database files and sqlite's write-ahead logs). At most 8 (dbStamp).
var dbFiles = map[string][]string{
	"dpkg": {"var/lib/dpkg/status", "var/lib/dpkg/updates", "var/lib/dpkg/diversions"},
	"rpm": append(slices.Clone(rpmDBFiles), "var/lib/rpm/rpmdb.sqlite-wal",
		"usr/lib/sysimage/rpm/rpmdb.sqlite-wal"),
}

// managerOf returns the package manager cfg selects.
func managerOf(cfg Config) string {
	if cfg.Manager != "auto" {
		return cfg.Manager
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "var/lib/dpkg/status")); err == nil {
		return "dpkg"
	}
	return "rpm"
}

// dbStamp returns the keys of the database's files (zero for a missing one).
func (x *Index) dbStamp() (st [8]fileKey) {
	for i, f := range dbFiles[managerOf(x.cfg)] {
		if fi, err := os.Stat(filepath.Join(x.cfg.Root, f)); err == nil {
			st[i] = keyOf(fi)
		}
	}
	return st
}

// dbChangedSince reports whether a file of the package database changed
// after t (unix ns): an install or upgrade is running or has run.
func (x *Index) dbChangedSince(t int64) bool {
	for _, f := range dbFiles[managerOf(x.cfg)] {
		if fi, err := os.Stat(filepath.Join(x.cfg.Root, f)); err == nil && fi.ModTime().UnixNano() > t {
			return true
		}
	}
	return false
}

func readDB(cfg Config) (*database, []error, error) {
	switch m := managerOf(cfg); m {
	case "dpkg":
		return readDpkg(cfg.Root)
	default:
		return readRPM(cfg.Root)
	}
}

func keyOf(fi fs.FileInfo) fileKey {
	k := fileKey{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.Ino = st.Ino
	}
	return k
}

// plan is one pass over the database: the index entries with what the
// persisted hashes already say, and the files left to hash.
type plan struct {
	entries []entry
	keys    []fileKey // keys[i] is the state of entries[i] when planned
	owned   []string
	aliases map[string]string
	store   map[string]hashed // persisted hashes of the current entries
	dirty   bool              // store differs from the file
	todo    []int             // entries to hash
	src     []*ownedFile      // the database's record of entries[i]
	unread  int
	// storeBad counts the lines of packages.idx that could not be read
	// (and a failed read): the file is rewritten at the end of the refresh.
	storeBad int
}

// makePlan resolves every file of db to its canonical path (directory
// symlinks such as /bin -> usr/bin followed inside the root), keeps the
// regular files below cfg.Paths (the files outside are known by path
// only, as owned), and takes the executables and libraries
// whose persisted hashes still match their size, mtime and inode.
func makePlan(cfg Config, db *database) (*plan, []error) {
	p := &plan{aliases: map[string]string{}}
	stored, errs, bad, err := loadStore(StorePath(cfg))
	p.storeBad = bad
	if err != nil {
		errs = append(errs, err)
		p.storeBad++
	}
	p.store = make(map[string]hashed, len(stored))
	r := resolver{root: cfg.Root, cache: map[string]string{}}
	seen := make(map[string]bool, len(db.files))
	for i := range db.files {
		f := &db.files[i]
		dir, base := path.Split(f.Path)
		dir = path.Clean(dir)
		cdir := r.dir(dir, 0)
		if cdir != dir {
			p.aliases[dir] = cdir
		}
		cpath := path.Join(cdir, base)
		// The paths test comes first: on merged /usr one file may be
		// listed as /usr/bin/x by one package and /bin/x by another, and
		// the listing inside paths must index it whatever the order.
		if !inPaths(cfg.Paths, cpath) && !inPaths(cfg.Paths, f.Path) {
			p.owned = append(p.owned, cpath) // a package's, outside paths: unindexed, not unowned
			continue
		}
		if seen[cpath] {
			continue
		}
		seen[cpath] = true
		fi, err := os.Lstat(filepath.Join(cfg.Root, cpath))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if fi.Mode().Perm()&0o111 == 0 && !isLibrary(base) {
			p.owned = append(p.owned, cpath)
			continue
		}
		k := keyOf(fi)
		e := entry{path: cpath, pkg: f.Pkg, flags: flagPending}
		if h, ok := stored[cpath]; ok && h.Key == k {
			p.store[cpath] = h
			e.flags = verdictFlags(db, f, &h)
			e.sha256, e.sha1 = tags(&h)
		} else {
			p.todo = append(p.todo, len(p.entries))
		}
		p.entries = append(p.entries, e)
		p.keys = append(p.keys, k)
		p.src = append(p.src, f)
	}
	p.dirty = len(p.store) != len(stored) || p.storeBad > 0
	return p, errs
}

// verdictFlags compares a file's own digests with the database's: a
// mismatch is flagModified, or flagChanging while the file's package is
// being replaced (an upgrade in progress is not an alert).
func verdictFlags(db *database, f *ownedFile, h *hashed) uint32 {
	ok := f.Algo == digestMD5 && [16]byte(f.Digest[:16]) == h.MD5 ||
		f.Algo == digestSHA256 && f.Digest == h.SHA256
	if ok {
		return 0
	}
	if db.pkgs[f.Pkg].Changing {
		return flagChanging
	}
	return flagModified
}

// refresh brings the live index up to date with db: one plan, a snapshot
// right away, the hashing of what changed (with a snapshot every 2 s), the
// persisted hashes written, and a final snapshot.
func (x *Index) refresh(db *database, dbRead int64) {
	p, errs := makePlan(x.cfg, db)
	for _, e := range errs {
		x.log.Warn("packages: persisted hashes", "err", e)
	}
	x.owned.Store(int64(len(p.owned)))
	x.reused.Store(int64(len(p.entries) - len(p.todo)))
	x.publish(db, p, dbRead)
	lim := limiter{start: time.Now()}
	lastPub, lastSave := time.Now(), time.Now()
	hashed := 0
	for n, i := range p.todo {
		if x.ctx.Err() != nil {
			break
		}
		lim.rate = x.cfg.RateMB * 1e6
		if x.full.Load() {
			lim.rate = 0
		}
		e := &p.entries[i]
		h, err := x.hashFile(e.path, p.keys[i], &lim)
		switch {
		case err == nil:
			p.store[e.path] = h
			p.dirty = true
			hashed++
			e.flags = verdictFlags(db, p.src[i], &h)
			e.sha256, e.sha1 = tags(&h)
		case errors.Is(err, errChanged):
			// It changed while it was read: left pending for the next
			// refresh, which comes soon.
			x.Refresh()
		case x.ctx.Err() == nil:
			// Unreadable: known by path only, like a data file.
			x.log.Debug("packages: cannot hash a package file", "path", e.path, "err", err)
			p.unread++
			e.flags = 0
			p.owned = append(p.owned, e.path)
			e.path = "" // dropped from the files below
		}
		if pr := x.progress.Load(); pr != nil {
			(*pr)(n+1, len(p.todo))
		}
		if time.Since(lastPub) > 2*time.Second {
			x.publish(db, p, dbRead)
			lastPub = time.Now()
		}
		if time.Since(lastSave) > saveEvery {
			x.save(p) // a long first build keeps its progress across a restart
			lastSave = time.Now()
		}
	}
	x.save(p)
	x.unreadable.Store(int64(p.unread))
	s := x.publish(db, p, dbRead)
	x.lastRefresh.Store(time.Now().UnixNano())
	if s.complete {
		select {
		case <-x.ready:
		default:
			// Logged before Wait returns: the line means the index is
			// complete (the IMA guest test waits for it).
			x.log.Info("packages: index complete", "manager", s.manager, "files", len(s.files),
				"hashed", hashed, "reused", len(p.entries)-len(p.todo), "modified", x.modified.Load(), "unreadable", p.unread)
			close(x.ready)
		}
	}
}

// saveEvery is how often a refresh that is still hashing saves the hashes
// taken so far.
const saveEvery = 30 * time.Second

// save writes p's hashes to packages.idx when they differ from it (not
// after Close: a refresh cut short keeps the file as it was).
func (x *Index) save(p *plan) {
	if !p.dirty || x.ctx.Err() != nil {
		return
	}
	if err := saveStore(StorePath(x.cfg), p.store); err != nil {
		x.log.Warn("packages: cannot write the persisted hashes", "dir", x.cfg.StateDir, "err", err)
		return
	}
	p.dirty = false
}

// publish builds and installs a snapshot of p.
func (x *Index) publish(db *database, p *plan, dbRead int64) *snapshot {
	es := make([]entry, 0, len(p.entries))
	mod := 0
	for _, e := range p.entries {
		if e.path != "" {
			es = append(es, e)
			if e.flags&flagModified != 0 {
				mod++
			}
		}
	}
	s := newSnapshot(db, es, p.owned, p.aliases, dbRead)
	s.builtAt = time.Now().UnixNano()
	x.modified.Store(int64(mod))
	x.cur.Store(s)
	x.updateGauges()
	return s
}

var errChanged = errors.New("file changed while it was hashed")

// hashFile reads root+p once through MD5, SHA-1 and SHA-256, keeping to the
// rate limit. The file must still have key k afterwards.
func (x *Index) hashFile(p string, k fileKey, lim *limiter) (hashed, error) {
	var h hashed
	f, err := os.Open(filepath.Join(x.cfg.Root, p))
	if err != nil {
		return h, err
	}
	defer f.Close()
	hs := [3]hash.Hash{md5.New(), sha1.New(), sha256.New()}
	buf := make([]byte, 256<<10)
	for {
		n, err := f.Read(buf)
		for _, d := range hs {
			d.Write(buf[:n])
		}
		x.bytesHashed.Add(int64(n))
		x.m.bytesHashed.Add(uint64(n))
		if err == io.EOF {
			break
		}
		if err != nil {
			return h, err
		}
		if err := lim.wait(x.ctx, n); err != nil {
			return h, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return h, err
	}
	if keyOf(fi) != k {
		return h, errChanged
	}
	h.Key = k
	hs[0].Sum(h.MD5[:0])
	hs[1].Sum(h.SHA1[:0])
	hs[2].Sum(h.SHA256[:0])
	x.hashed.Add(1)
	x.m.filesHashed.Inc()
	return h, nil
}

// limiter paces reads to rate bytes per second (0: no pacing).
type limiter struct {
	rate  float64
	start time.Time
	n     int64
}

func (l *limiter) wait(ctx context.Context, n int) error {
	l.n += int64(n)
	if l.rate <= 0 {
		return nil
	}
	due := l.start.Add(time.Duration(float64(l.n) / l.rate * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		if d < -time.Second { // idle time earns no burst
			l.start, l.n = time.Now(), 0
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resolver maps directories listed by the database to their canonical
// form inside root, following symbolic links (absolute targets are taken
// inside root).
type resolver struct {
	root  string
	cache map[string]string
}

func (r *resolver) dir(d string, depth int) string {
	if d == "/" || depth > 40 {
		return d
	}
	if c, ok := r.cache[d]; ok {
		return c
	}
	parent := r.dir(path.Dir(d), depth+1)
	c := path.Join(parent, path.Base(d))
	if fi, err := os.Lstat(filepath.Join(r.root, c)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := os.Readlink(filepath.Join(r.root, c)); err == nil {
			if !path.IsAbs(t) {
				t = path.Join(parent, t)
			}
			c = r.dir(path.Clean(t), depth+1)
		}
	}
	r.cache[d] = c
	return c
}

// Inspect reports the state of the persisted index against the package
// database now, without hashing anything: what a running plugin (or the
// next start) holds and what it still has to hash. LastRefresh is when
// packages.idx was last written.
func Inspect(cfg Config) (Stats, error) {
	db, _, err := readDB(cfg)
	if err != nil {
		return Stats{}, err
	}
	p, _ := makePlan(cfg, db) // store errors are counted in p.storeBad
	st := Stats{Manager: db.manager, Packages: len(db.pkgs), Files: len(p.entries), Owned: len(p.owned),
		Reused: int64(len(p.entries) - len(p.todo)), StoreBad: p.storeBad}
	// A file this process cannot read is unreadable, not pending: the
	// index would not hash it either (when it runs as the same user).
	for _, i := range p.todo {
		if unix.Access(filepath.Join(cfg.Root, p.entries[i].path), unix.R_OK) != nil {
			st.Unreadable++
		} else {
			st.Pending++
		}
	}
	st.Complete = st.Pending == 0
	for _, e := range p.entries {
		if e.flags&flagModified != 0 {
			st.Modified++
		}
	}
	if fi, err := os.Stat(StorePath(cfg)); err == nil {
		st.LastRefresh = fi.ModTime()
	}
	return st, nil
}

// String renders the stats as the lines of "packages status".
func (st Stats) String() string {
	last := "never"
	if !st.LastRefresh.IsZero() {
		last = st.LastRefresh.UTC().Format(time.RFC3339)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "manager:       %s\npackages:      %d\nindexed files: %d (executables and libraries)\nother files:   %d (package files known by path)\n",
		st.Manager, st.Packages, st.Files, st.Owned)
	fmt.Fprintf(&b, "hashed:        %d files (persisted hashes that match the files)\npending:       %d files to hash\nmodified:      %d files fail the package database's digest\n",
		st.Reused+st.Hashed, st.Pending, st.Modified)
	if st.Hashed > 0 || st.BytesHashed > 0 {
		fmt.Fprintf(&b, "hashed now:    %d files, %d bytes (this process)\n", st.Hashed, st.BytesHashed)
	}
	if st.Unreadable > 0 {
		fmt.Fprintf(&b, "unreadable:    %d files\n", st.Unreadable)
	}
	if st.StoreBad > 0 {
		fmt.Fprintf(&b, "warning:       %d lines of the hash file unreadable; their files are hashed again and the file rewritten at the next refresh\n", st.StoreBad)
	}
	if st.LiveBytes > 0 {
		fmt.Fprintf(&b, "live index:    %d bytes\n", st.LiveBytes)
	}
	fmt.Fprintf(&b, "complete:      %t\nlast refresh:  %s\n", st.Complete, last)
	return b.String()
}
