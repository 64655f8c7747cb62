// Package blocklist checks the file hashes of an event against local block
// and allow lists.
//
// Lists are files in one of four formats (see ListConfig.Format); md5,
// sha1, sha256 and sha512 digests may be mixed in one list. Each list is
// held in a compact index (an ordered open-addressing table of 64-bit keyed
// tags of the whole digest, under a per-process random key, with interned
// labels and a small filter; about 17 bytes per entry, false-hit
// probability n·2^-64 per lookup however the digest was chosen, see
// index.go) that is replaced
// as a whole, with an atomic pointer swap, when the
// file changes (polled every Config.ReloadInterval) or when Reload is called
// (SIGHUP). Lookups never wait for a reload. While a list reloads, its old
// and new index are both in memory.
//
// A file with any malformed line is rejected as a whole: the list keeps its
// previous index, the error names file:line, it is logged and counted in
// audisp_enrich_blocklist_load_errors_total. Lines that are merely not about file hashes
// (ThreatFox IOCs of other types, empty or n/a CSV cells, comments) are
// skipped, not errors.
//
// The enricher reads Event.Hashes, so the hashes enricher must run first.
package blocklist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// SeverityHit is the severity a blocklist hit raises an event to.
const SeverityHit = 3

// Enricher matches Event.Hashes against the configured lists. Enrich is safe
// for concurrent use, also while a reload runs.
type Enricher struct {
	log   *slog.Logger
	lists []*list

	reloadMu sync.Mutex // serialises loads (watcher and Reload)
	stop     chan struct{}
	done     chan struct{}
	closed   sync.Once
}

type list struct {
	cfg ListConfig
	tag string                // blocklist:<name>
	idx atomic.Pointer[index] // nil until a load succeeds

	seen    fileID // the file last read (or attempted), guarded by reloadMu
	statErr bool   // the last stat failed and was logged, guarded by reloadMu

	labels     string
	hits       *metrics.Counter
	loadErrors *metrics.Counter
	loads      *metrics.Counter
	entries    *metrics.Gauge
}

const (
	mHits       = "audisp_enrich_blocklist_hits_total"
	mLoadErrors = "audisp_enrich_blocklist_load_errors_total"
	mLoads      = "audisp_enrich_blocklist_loads_total"
	mEntries    = "audisp_enrich_blocklist_entries"
)

// New validates cfg, loads every list and, when cfg.ReloadInterval is
// positive, starts a goroutine that polls the files; Close stops it. If any
// list fails to load, New returns an error naming each failing file (with
// its line for a malformed line) and starts nothing. With cfg.Enabled false
// it returns an enricher that matches nothing. A nil logger means
// slog.Default(). The lists' series are registered in reg (nil:
// metrics.Default) by list name; an enricher built later with the same
// registry (a reload) continues them.
func New(cfg Config, logger *slog.Logger, reg *metrics.Registry) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	e := &Enricher{log: logger.With("enricher", "blocklist")}
	if !cfg.Enabled {
		return e, nil
	}
	var errs []error
	for _, lc := range cfg.Lists {
		l := &list{cfg: lc, tag: "blocklist:" + lc.Name, labels: fmt.Sprintf(`list=%q,kind=%q`, lc.Name, lc.kind())}
		if err := e.load(l); err != nil {
			errs = append(errs, err)
		}
		e.lists = append(e.lists, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.registerMetrics(reg)
	if cfg.ReloadInterval > 0 && len(e.lists) > 0 {
		e.stop, e.done = make(chan struct{}), make(chan struct{})
		go e.watch(cfg.ReloadInterval)
	}
	return e, nil
}

// registerMetrics registers the lists' series in reg (nil: metrics.Default).
func (e *Enricher) registerMetrics(reg *metrics.Registry) {
	if reg == nil {
		reg = metrics.Default
	}
	for _, l := range e.lists {
		l.hits = reg.Counter(mHits, l.labels, "Event hashes found in a block or allow list.")
		l.loadErrors = reg.Counter(mLoadErrors, l.labels, "List loads that failed; the list kept its previous index.")
		l.loads = reg.Counter(mLoads, l.labels, "List loads that succeeded.")
		l.entries = reg.Gauge(mEntries, l.labels, "Unique digests in the list's current index.")
		if ix := l.idx.Load(); ix != nil {
			l.loads.Inc()
			l.entries.Set(int64(ix.len()))
		}
	}
}

// Name returns "blocklist".
func (e *Enricher) Name() string { return "blocklist" }

// Enrich looks up every entry of ev.Hashes in every list, in list order. A
// block list hit appends a ListHit (list name, label, the digest as in ev.Hashes)
// to ev.Blocklist, adds the tag blocklist:<name> and raises ev.Severity to
// at least SeverityHit; an allow list hit appends to ev.Allowlisted. A hash
// on both kinds of list gets both. Identical hits are recorded once. Hashes
// whose algorithm the lists do not hold (sha224, sha384) match nothing.
// Enrich never blocks and never fails.
func (e *Enricher) Enrich(_ context.Context, ev *audit.Event) error {
	if len(e.lists) == 0 {
		return nil
	}
	var d digest
	for _, h := range ev.Hashes {
		a, ok := algoByName(h.Algo)
		if !ok || !parseDigest(h.Hex, &d) || d.algo != a {
			continue
		}
		for _, l := range e.lists {
			ix := l.idx.Load()
			if ix == nil {
				continue
			}
			label, ok := ix.lookup(&d)
			if !ok {
				continue
			}
			l.hits.Inc()
			hit := audit.ListHit{List: l.cfg.Name, Label: label, Hash: h.Hex}
			if l.cfg.kind() == KindAllow {
				ev.Allowlisted = appendHit(ev.Allowlisted, hit)
				continue
			}
			ev.Blocklist = appendHit(ev.Blocklist, hit)
			ev.AddTag(l.tag)
			if ev.Severity < SeverityHit {
				ev.Severity = SeverityHit
			}
		}
	}
	return nil
}

func appendHit(hits []audit.ListHit, h audit.ListHit) []audit.ListHit {
	for _, x := range hits {
		if x == h {
			return hits
		}
	}
	return append(hits, h)
}

// Reload reads every list file again, changed or not (call it on SIGHUP).
// Each list that loads replaces its index; each that fails keeps its
// previous one. The error joins the failures, each naming its file (and
// line). Safe to call concurrently with Enrich and with the poller.
func (e *Enricher) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	var errs []error
	for _, l := range e.lists {
		if err := e.load(l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the poller. The enricher keeps matching with the indexes it
// holds. Close may be called more than once. Metrics are registered by
// list name and stay registered: an enricher that a reload builds beside
// this one (before this one is closed) continues the same series.
func (e *Enricher) Close() error {
	e.closed.Do(func() {
		if e.stop != nil {
			close(e.stop)
			<-e.done
		}
	})
	return nil
}

// load reads l's file and swaps its index in. On failure the old index
// stays, the error is logged and counted. The caller holds reloadMu, or
// owns e exclusively (New).
func (e *Enricher) load(l *list) error {
	start := time.Now()
	ix, id, err := loadFile(&l.cfg)
	l.statErr = false
	if id != (fileID{}) {
		l.seen = id
	}
	if err != nil {
		err = fmt.Errorf("blocklist %q: %w", l.cfg.Name, err)
		if l.loadErrors != nil { // nil during New, which returns the error instead
			l.loadErrors.Inc()
			e.log.Error("list not reloaded, keeping the previous index", "list", l.cfg.Name, "err", err)
		}
		return err
	}
	old := l.idx.Swap(ix)
	c := ix.counts()
	e.log.Info("list loaded", "list", l.cfg.Name, "kind", l.cfg.kind(), "path", l.cfg.Path,
		"md5", c[algoMD5], "sha1", c[algoSHA1], "sha256", c[algoSHA256], "sha512", c[algoSHA512],
		"labels", len(ix.labels)-1, "took", time.Since(start).Round(time.Millisecond), "replaced", old != nil)
	if l.loads != nil {
		l.loads.Inc()
		l.entries.Set(int64(ix.len()))
	}
	return nil
}

// watch polls the list files every interval until Close.
func (e *Enricher) watch(interval time.Duration) {
	defer close(e.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.poll()
		}
	}
}

// poll reloads the lists whose file changed (inode, size or mtime) since it
// was last read. A file that cannot be read again after a failed load is not
// retried until it changes, so a broken file is logged once.
func (e *Enricher) poll() {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	for _, l := range e.lists {
		fi, err := os.Stat(l.cfg.Path)
		if err != nil {
			if !l.statErr {
				l.statErr = true
				l.loadErrors.Inc()
				e.log.Error("list file unreadable, keeping the previous index", "list", l.cfg.Name, "err", err)
			}
			continue
		}
		if l.statErr || statID(fi) != l.seen {
			_ = e.load(l) // logged and counted by load
		}
	}
}

var _ enrich.Enricher = (*Enricher)(nil)
