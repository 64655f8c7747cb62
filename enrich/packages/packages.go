// Package packages checks the IMA hash of every event against the package
// manager's own digests: is the measured file exactly what a package
// installed at that path (package), a package's file changed
// (modified), a package's file under another name (relocated), or none of
// these (unowned)?
//
// # Index
//
// The database is dpkg's (status and info/*.md5sums) or rpm's (sqlite, ndb
// or Berkeley DB, read with go-rpmdb). dpkg keeps only MD5 digests, rpm
// SHA-256 (MD5 for old packages), and the kernel logs SHA-256 or SHA-1. An
// Index therefore hashes each executable (any execute bit) and shared
// library (*.so, *.so.N) that a package owns, once, with MD5, SHA-1 and
// SHA-256, and keeps the SHA digests of the files whose digest is the one
// the database recorded; a file whose digest already differs is marked
// modified.
// Directory symlinks are resolved inside the root, so on a merged-/usr
// system /bin/ls (as dpkg lists it) and /usr/bin/ls (as the kernel logs
// it) are one entry. Hashing runs in one goroutine on a thread with nice 19
// and the idle I/O class, paced to Config.RateMB, and never on the event
// path. The hashes are persisted in StateDir/packages.idx keyed by path,
// size, mtime and inode, so a restart hashes only files that changed. The
// database's files are polled every Config.Refresh; a change re-reads the
// database and hashes what changed.
//
// The live index keeps 64-bit keyed tags of the SHA-256 and SHA-1 digests
// (digesttag: a per-process secret key, so a file cannot be crafted to
// share a package file's tag as it could its first 8 bytes) and a 64-bit
// hash of the path: about 40 bytes per indexed file plus its base name.
// With n indexed files, any digest that is not a package file's matches
// some tag with probability about n/2^64 (2.7e-15 for 50,000 files).
//
// # Event path
//
// Enrich judges the event's first SHA-256 hash, else its first SHA-1
// (other algorithms are not judged), with a lookup that takes no lock and
// does not allocate, and sets ev.Package. Results other than relocated are
// shared between events. A hash that differs from the package's on a path
// the package owns is re-checked before it is called modified: when the
// file changed (ctime) after it was indexed and the package database
// changed after it was read (an install or upgrade is running or just ran),
// the answer is unindexed and the index refreshes; otherwise it is
// modified.
package packages

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Name is the enricher's name.
const Name = "packages"

// indexMetrics are the index's counters and gauges.
type indexMetrics struct {
	filesHashed, bytesHashed, badLines *metrics.Counter
	files, pending, modified, live     *metrics.Gauge
	refresh                            *metrics.Gauge
}

func newIndexMetrics(reg *metrics.Registry) *indexMetrics {
	return &indexMetrics{
		filesHashed: reg.Counter("audisp_enrich_packages_files_hashed_total", "",
			"Package files hashed for the package index (persisted hashes are not hashed again)."),
		bytesHashed: reg.Counter("audisp_enrich_packages_bytes_hashed_total", "", "Bytes read to hash package files."),
		badLines:    reg.Counter("audisp_enrich_packages_bad_lines_total", "", "Lines of the package database that could not be read."),
		files:       reg.Gauge("audisp_enrich_packages_index_files", "", "Executables and libraries in the package index."),
		pending:     reg.Gauge("audisp_enrich_packages_pending_files", "", "Package files waiting to be hashed."),
		modified:    reg.Gauge("audisp_enrich_packages_modified_files", "", "Package files whose content fails the package database's digest."),
		live:        reg.Gauge("audisp_enrich_packages_index_bytes", "", "Memory of the live package index's per-file tables."),
		refresh:     reg.Gauge("audisp_enrich_packages_last_refresh_seconds", "", "Unix time of the last package index refresh."),
	}
}

func (x *Index) updateGauges() {
	st := x.Stats()
	x.m.files.Set(int64(st.Files))
	x.m.pending.Set(int64(st.Pending))
	x.m.modified.Set(int64(st.Modified))
	x.m.live.Set(int64(st.LiveBytes))
	if !st.LastRefresh.IsZero() {
		x.m.refresh.Set(st.LastRefresh.Unix())
	}
}

// Enricher sets ev.Package. It is safe for concurrent use.
type Enricher struct {
	idx     *Index
	prev    atomic.Pointer[Enricher] // answers until idx is complete (TakeOver)
	none    *audit.PackageResult     // before the first snapshot
	lookups map[string]*metrics.Counter
}

var _ enrich.Enricher = (*Enricher)(nil)

// New starts the index (see OpenIndex) and returns the enricher. Its
// metrics are registered in reg (nil: metrics.Default). Close stops the
// index.
func New(cfg Config, log *slog.Logger, reg *metrics.Registry) *Enricher {
	if reg == nil {
		reg = metrics.Default
	}
	e := &Enricher{idx: OpenIndex(cfg, log, reg), none: &audit.PackageResult{Status: StatusUnindexed},
		lookups: map[string]*metrics.Counter{}}
	for _, s := range []string{StatusPackage, StatusModified, StatusRelocated, StatusUnowned, StatusUnindexed} {
		e.lookups[s] = reg.Counter("audisp_enrich_packages_lookups_total", `status="`+s+`"`,
			"Event hashes judged against the package index, by status.")
	}
	return e
}

// Name returns "packages".
func (*Enricher) Name() string { return Name }

// Index returns the enricher's index.
func (e *Enricher) Index() *Index { return e.idx }

// Close stops the index (and the one it took over, if that still runs).
func (e *Enricher) Close() {
	if p := e.prev.Swap(nil); p != nil {
		p.Close()
	}
	e.idx.Close()
}

// TakeOver makes e own old, which answers all of e's lookups until e's
// own index is complete (every file hashed, so no known-good binary is
// unindexed in the hand-over) and is then closed, or until e's index stops
// or e is closed. A reload that changed the settings thus keeps the
// previous settings' answers while the new index hashes, never a
// half-built index. The caller must not close old after. A reload that
// keeps the settings keeps the running enricher instead.
func (e *Enricher) TakeOver(old *Enricher) {
	if old == nil || old == e {
		return
	}
	e.prev.Store(old)
	go func() {
		select {
		case <-e.idx.ready:
		case <-e.idx.done:
		}
		if p := e.prev.Swap(nil); p != nil {
			p.Close()
		}
	}()
}

// Enrich sets ev.Package for the event's first SHA-256 hash, else its first
// SHA-1; events without either are left alone. It never returns an error.
func (e *Enricher) Enrich(ctx context.Context, ev *audit.Event) error {
	var fh *audit.FileHash
	for i := range ev.Hashes {
		h := &ev.Hashes[i]
		if strings.EqualFold(h.Algo, "sha256") && len(h.Hex) == 64 {
			fh = h
			break
		}
		if fh == nil && strings.EqualFold(h.Algo, "sha1") && len(h.Hex) == 40 {
			fh = h
		}
	}
	if fh == nil {
		return nil
	}
	if p := e.prev.Load(); p != nil {
		return p.Enrich(ctx, ev)
	}
	x := e.idx
	s := x.cur.Load()
	if s == nil {
		e.lookups[StatusUnindexed].Inc()
		ev.Package = e.none
		return nil
	}
	v := s.lookup(fh.Path, fh.Hex, len(fh.Hex) == 64)
	if v.status == StatusModified && changing(x, s, fh.Path) {
		v.status = StatusUnindexed
	}
	if r := s.result(v); r != nil {
		e.lookups[r.Status].Inc()
		ev.Package = r
	}
	return nil
}

const ctimeSlack = time.Second

// changing re-checks a modified verdict of x's snapshot s (see the
// package comment): it reports whether the file changed after the snapshot
// was built while the package database changed after it was read. Either
// change asks the index for a refresh.
func changing(x *Index, s *snapshot, p string) bool {
	fi, err := os.Lstat(filepath.Join(x.cfg.Root, p))
	if err != nil {
		return false
	}
	// The kernel stamps ctime from a clock that may lag the one builtAt
	// came from by a tick: a change within ctimeSlack before builtAt
	// counts as after it.
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || time.Unix(st.Ctim.Unix()).UnixNano() <= s.builtAt-int64(ctimeSlack) {
		return false
	}
	x.Refresh()
	return x.dbChangedSince(s.dbRead)
}
