// Package virustotal looks up the file hashes of events in VirusTotal (API v3,
// /api/v3/files/{hash}) without ever holding up the event stream.
//
// Enrich answers from the caches (memory LRU, then vt.db in the state
// directory) or queues the hash and marks the event "pending"; a single
// background worker looks queued hashes up within the per-minute, per-day
// and per-month budgets and emits a verdict document (audit.KindVerdict)
// naming every event that waited. The cache, the queue and the budget
// counters survive restarts.
//
// The API key never appears in logs, errors, URLs (it travels in the
// X-Apikey header) or documents: every error text that leaves the package
// is redacted.
package virustotal

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vt "github.com/VirusTotal/vt-go"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Values of audit.VTResult.Status.
const (
	StatusHit      = "hit"       // a verdict (from the cache, or in a verdict document)
	StatusPending  = "pending"   // queued; a verdict document follows
	StatusNotFound = "not_found" // VirusTotal does not know the file
	StatusError    = "error"     // the lookup failed for good; Reason says why
	StatusSkipped  = "skipped"   // not looked up; Reason says why
)

// Values of audit.VTResult.Reason.
const (
	ReasonAllowlisted = "allowlisted" // a local allow list matched (skipped)
	ReasonPackage     = "package"     // the package database vouches for the file (skipped)
	ReasonDisabled    = "disabled"    // lookups are off, the key was rejected, or the enricher is closed (skipped)
	ReasonNoHash      = "no_hash"     // no md5, sha1 or sha256 among the hashes (skipped)
	ReasonQueueFull   = "queue_full"  // the pending queue is full of hashes as urgent (skipped)
	ReasonOverBudget  = "over_budget" // pending until the day or month budget resets
)

// Name is the enricher's name.
const Name = "virustotal"

// tuning holds the knobs tests change; New uses defaultTuning.
type tuning struct {
	now         func() time.Time
	backoffBase time.Duration // first pause after a transient failure
	backoffMax  time.Duration
	maxAttempts int           // transient failures before a hash gets status "error"
	flushEvery  time.Duration // how often the queue is written to vt.db when it changed
	held        bool          // start held (NewHeld)
}

var defaultTuning = tuning{
	now:         time.Now,
	backoffBase: 5 * time.Second,
	backoffMax:  5 * time.Minute,
	maxAttempts: 5,
	flushEvery:  2 * time.Second,
}

// Enricher looks up event hashes in VirusTotal. Enrich is safe for
// concurrent use and never does network or disk writes; Close stops the
// worker.
type Enricher struct {
	cfg  Config
	log  *slog.Logger
	emit enrich.Emitter
	red  redactor
	tune tuning

	lru    *lru.Cache[string, cacheEntry]
	st     *store
	client *vt.Client
	tr     *transport

	mu    sync.Mutex // guards q and dirty
	q     queue
	dirty map[string]struct{} // hashes whose queue record must be written or deleted

	bmu       sync.Mutex // guards b
	b         budget
	overUntil atomic.Int64 // unix nanos; new hashes are over budget before it

	disabled atomic.Bool // the key was rejected
	held     atomic.Bool // Hold: no lookup starts until Resume
	lookMu   sync.Mutex  // held by the worker while it picks and looks up a hash
	wake     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	closeErr error

	m      stats
	reg    *metrics.Registry
	unregs [][2]string
}

// stats are the enricher's metrics.
type stats struct {
	lookups   map[outcome]*metrics.Counter
	cacheHit  *metrics.Counter
	cacheMiss *metrics.Counter
	skipped   map[string]*metrics.Counter
	verdicts  *metrics.Counter
	storeErrs *metrics.Counter
}

// New validates cfg and starts the enricher. With cfg.Enabled false it
// returns an enricher that marks hashed events skipped/disabled and starts
// nothing. Otherwise it resolves the API key (see Config), opens
// StateDir/vt.db, restores the pending queue and budget, points vt-go at
// cfg.Host (a process-wide setting) and starts the worker. emit receives
// verdict documents from the worker goroutine.
//
// Only one Enricher may use a StateDir at a time (vt.db is locked; New
// gives up after a second): on reload, Close the old one before calling
// New. Metrics are registered in reg (nil: metrics.Default) by New; Close
// removes the gauges read from this enricher and keeps the counters.
//
// A verdict document is an *audit.Event with Kind audit.KindVerdict, the ID
// of the first event that went on as pending, Enrichment.VirusTotal set to
// the outcome (hit, not_found, error, or skipped/queue_full when the hash
// was evicted), Enrichment.Hashes holding the looked-up file hash, and
// Enrichment.Related listing the ids of the events that went on as pending
// (at most 256; a warning counts the rest). No document is emitted when
// every event got its answer within max_wait.
func New(cfg Config, emit enrich.Emitter, logger *slog.Logger, reg *metrics.Registry) (*Enricher, error) {
	return newEnricher(cfg, emit, logger, defaultTuning, reg)
}

func newEnricher(cfg Config, emit enrich.Emitter, logger *slog.Logger, tune tuning, reg *metrics.Registry) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	e := &Enricher{cfg: cfg, log: logger.With("enricher", Name), emit: emit, tune: tune}
	if !cfg.Enabled {
		return e, nil
	}
	if emit == nil {
		return nil, fmt.Errorf("virustotal: New needs an Emitter for verdict documents")
	}
	key, base := "", http.DefaultTransport.(*http.Transport).Clone()
	var answers answerTransport
	var err error
	if cfg.AnswersFile != "" {
		if answers, err = loadAnswers(cfg.AnswersFile); err != nil {
			return nil, err
		}
		key = "answers-file" // never sent anywhere
	} else if key, err = loadKey(&cfg, e.log); err != nil {
		return nil, err
	}
	e.red = newRedactor(key)
	if e.lru, err = lru.New[string, cacheEntry](cfg.CacheSize); err != nil {
		return nil, fmt.Errorf("virustotal: %w", err)
	}
	if e.st, err = openStore(cfg.StateDir, e.log); err != nil {
		return nil, err
	}
	e.b = budget{perMin: cfg.PerMinute, perDay: cfg.PerDay, perMonth: cfg.PerMonth, pace: cfg.Pace}
	if err := e.st.loadBudget(&e.b); err != nil {
		e.log.Error("virustotal: stored budget unreadable; counting from zero", "err", err)
	}
	e.q = newQueue(cfg.QueueSize)
	e.dirty = make(map[string]struct{})
	e.restoreQueue()

	host := strings.TrimSuffix(cfg.Host, "/")
	if host == "" {
		host = DefaultHost
	}
	setHost(host)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if answers != nil {
		e.client, e.tr = newClient(key, cfg.Timeout, e.ctx, answers)
	} else {
		e.client, e.tr = newClient(key, cfg.Timeout, e.ctx, base)
	}
	e.wake = make(chan struct{}, 1)
	e.done = make(chan struct{})
	e.registerMetrics(reg)
	now := e.tune.now()
	e.bmu.Lock()
	e.setOver(now)
	e.bmu.Unlock()
	e.held.Store(tune.held)
	go e.run()
	return e, nil
}

// hostMu guards hostSet, the host last given to vt-go, whose SetHost
// writes a process-wide variable that its requests read unguarded.
var (
	hostMu  sync.Mutex
	hostSet string
)

// setHost points vt-go at host, writing only when it changes: enrichers
// built while others run (a reload, or the verdict service's instances in
// one test process) then do not race the running ones' requests. One
// process talks to one VirusTotal host.
func setHost(host string) {
	hostMu.Lock()
	defer hostMu.Unlock()
	if host != hostSet {
		vt.SetHost(host)
		hostSet = host
	}
}

func (e *Enricher) restoreQueue() {
	items, bad, err := e.st.loadQueue()
	if err != nil {
		e.log.Error("virustotal: stored queue unreadable; starting empty", "err", err)
		return
	}
	for _, b := range bad {
		e.log.Warn("virustotal: dropped a damaged queue record", "err", b)
	}
	// Keep the most urgent when the queue shrank since the last run.
	sortItems(items)
	for i, it := range items {
		if i >= e.q.max {
			e.dirty[it.Hash] = struct{}{} // not in q: the next flush deletes it
			continue
		}
		e.q.restore(it)
	}
	if len(items) > 0 {
		e.log.Info("virustotal: restored pending lookups", "count", len(e.q.items))
	}
}

func sortItems(items []*item) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && before(items[j], items[j-1]); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// Name returns "virustotal".
func (e *Enricher) Name() string { return Name }

// Enrich sets ev.VirusTotal for the event's primary hash (the first sha256,
// else sha1, else md5 of ev.Hashes; events without hashes are left alone).
// It answers from the caches when it can; otherwise it queues the hash and
// waits up to Config.MaxWait (bounded by ctx) for the worker, then reports
// "pending" and registers the event for the verdict document. It never
// returns an error: every outcome is a status.
func (e *Enricher) Enrich(ctx context.Context, ev *audit.Event) error {
	if len(ev.Hashes) == 0 {
		return nil
	}
	fh, reason := Choose(ev)
	h := fh.Hex
	if reason != "" {
		ev.VirusTotal = e.skip(h, reason)
		return nil
	}
	if !e.cfg.Enabled || e.ctx.Err() != nil { // off, or closed
		ev.VirusTotal = e.skip(h, ReasonDisabled)
		return nil
	}
	now := e.tune.now()
	if c, ok := e.lru.Get(h); ok && c.Expires > now.UnixNano() {
		e.m.cacheHit.Inc()
		ev.VirusTotal = c.result(h)
		return nil
	}

	wait := e.cfg.MaxWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-5*time.Millisecond)
	}
	register := wait <= 0 // a waiting event registers only if the wait runs out
	prio := priority(ev, fh)

	e.mu.Lock()
	it := e.q.items[h]
	if it != nil && !e.disabled.Load() {
		e.joinLocked(it, ev.ID, prio, register)
	}
	e.mu.Unlock()
	if it == nil {
		if c, ok := e.fromDisk(h, now); ok {
			ev.VirusTotal = c.result(h)
			return nil
		}
	}
	e.m.cacheMiss.Inc()
	if e.disabled.Load() {
		ev.VirusTotal = e.skip(h, ReasonDisabled)
		return nil
	}
	if it == nil {
		var res *audit.VTResult
		if it, res = e.enqueue(h, fh, ev.ID, prio, register); res != nil {
			ev.VirusTotal = res
			return nil
		}
	}
	if !register {
		t := time.NewTimer(wait)
		select {
		case <-it.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		e.mu.Lock()
		if it.res != nil {
			res := *it.res
			if res.VTVerdict != nil {
				v := *res.VTVerdict
				res.VTVerdict = &v
			}
			e.mu.Unlock()
			ev.VirusTotal = &res
			return nil
		}
		e.joinLocked(it, ev.ID, prio, true)
		e.mu.Unlock()
	}
	ev.VirusTotal = e.pending(h, now)
	return nil
}

// fromDisk answers h from vt.db when it holds a live entry, which it then
// also puts in the memory cache; a read failure is counted and logged.
func (e *Enricher) fromDisk(h string, now time.Time) (cacheEntry, bool) {
	c, ok, err := e.st.entry(h, now)
	if err != nil {
		e.m.storeErrs.Inc()
		e.log.Warn("virustotal: disk cache read failed", "hash", h, "err", err)
		return c, false
	}
	if ok {
		e.lru.Add(h, c)
		e.m.cacheHit.Inc()
	}
	return c, ok
}

func (e *Enricher) skip(h, reason string) *audit.VTResult {
	if c := e.m.skipped[reason]; c != nil {
		c.Inc()
	}
	return &audit.VTResult{Status: StatusSkipped, Reason: reason, Hash: h}
}

func (e *Enricher) pending(h string, now time.Time) *audit.VTResult {
	r := &audit.VTResult{Status: StatusPending, Hash: h}
	if now.UnixNano() < e.overUntil.Load() {
		r.Reason = ReasonOverBudget
	}
	return r
}

// joinLocked adds an event to a queued item. e.mu must be held.
func (e *Enricher) joinLocked(it *item, id audit.EventID, prio int, register bool) {
	if register {
		it.addWaiter(id)
		e.dirty[it.Hash] = struct{}{}
	}
	if prio > it.Prio {
		it.Prio = prio
		e.dirty[it.Hash] = struct{}{}
	}
}

// enqueue queues h, or joins the item another goroutine queued meanwhile.
// It returns a result instead when the queue refuses the hash.
func (e *Enricher) enqueue(h string, fh audit.FileHash, id audit.EventID, prio int, register bool) (*item, *audit.VTResult) {
	e.mu.Lock()
	if it := e.q.items[h]; it != nil {
		e.joinLocked(it, id, prio, register)
		e.mu.Unlock()
		return it, nil
	}
	it := &item{Hash: h, Prio: prio, File: fileRef{Path: fh.Path, Algo: fh.Algo, Hex: h}}
	if register {
		it.addWaiter(id)
	}
	evicted, ok := e.q.push(it)
	if !ok {
		e.mu.Unlock()
		return nil, e.skip(h, ReasonQueueFull)
	}
	e.dirty[h] = struct{}{}
	var doc *audit.Event
	if evicted != nil {
		e.dirty[evicted.Hash] = struct{}{}
		evicted.res = &audit.VTResult{Status: StatusSkipped, Reason: ReasonQueueFull, Hash: evicted.Hash}
		close(evicted.done)
		doc = verdictDoc(evicted)
	}
	e.mu.Unlock()
	if evicted != nil {
		// Logged the first time, then every 1000th queue_full skip.
		if n := e.m.skipped[ReasonQueueFull].Value(); n%1000 == 0 {
			e.log.Warn("virustotal: pending queue full; dropped a less urgent hash", "dropped", evicted.Hash, "queued", h, "queue_full_before", n)
		}
		e.m.skipped[ReasonQueueFull].Inc()
		if doc != nil {
			e.emitDoc(doc)
		}
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return it, nil
}

// verdictDoc builds the verdict document for a finished item, or nil when
// no event is waiting for it. e.mu must be held.
func verdictDoc(it *item) *audit.Event {
	ids := make([]audit.EventID, len(it.Waiters))
	for i, w := range it.Waiters {
		ids[i] = w.audit()
	}
	return VerdictDocument(it.res, audit.FileHash{Path: it.File.Path, Algo: it.File.Algo, Hex: it.File.Hex}, ids, it.Extra)
}

// VerdictDocument builds the verdict document (see New) for res about
// file, naming the events that went on as pending (waiters, the first
// gives the document its id) and counting in a warning the extra ones
// not listed; nil when no event waits. res is copied.
func VerdictDocument(res *audit.VTResult, file audit.FileHash, waiters []audit.EventID, extra int) *audit.Event {
	if len(waiters) == 0 {
		return nil
	}
	r := *res
	doc := &audit.Event{Kind: audit.KindVerdict, ID: waiters[0]}
	doc.VirusTotal = &r
	doc.Hashes = []audit.FileHash{file}
	doc.Related = make([]string, len(waiters))
	for i, w := range waiters {
		doc.Related[i] = w.String()
	}
	if extra > 0 {
		doc.Warnings = append(doc.Warnings,
			fmt.Sprintf("virustotal: %d more events waited on this hash; their ids are not listed", extra))
	}
	return doc
}

// Disabled reports whether VirusTotal rejected the key (401/403): the
// enricher looks nothing up any more. A reload must replace such an
// enricher, which reads the key again, rather than keep it.
func (e *Enricher) Disabled() bool { return e.disabled.Load() }

func (e *Enricher) emitDoc(doc *audit.Event) {
	e.m.verdicts.Inc()
	e.emit.Emit(doc)
}

// Choose decides, for this enricher and the fleet host alike, whether an
// event with hashes needs a verdict: it returns the hash the event is
// looked up by (the first sha256, else sha1, else md5, lower-cased) and ""
// when it needs one, or the reason it does not: ReasonNoHash (no usable
// hash; fh is then empty), ReasonAllowlisted (a local allow list vouches for
// it) or ReasonPackage (the package database does; the packages enricher
// judged the first sha256, else sha1, which is the hash picked here
// whenever the event has one).
func Choose(ev *audit.Event) (fh audit.FileHash, reason string) {
	fh, ok := pickHash(ev.Hashes)
	switch {
	case !ok:
		return audit.FileHash{}, ReasonNoHash
	case len(ev.Allowlisted) > 0:
		return fh, ReasonAllowlisted
	case ev.Package != nil && ev.Package.Status == packages.StatusPackage:
		return fh, ReasonPackage
	}
	return fh, ""
}

// pickHash returns the hash to look up: the first sha256, else sha1, else
// md5 (lower-cased), and false when there is none.
func pickHash(hs []audit.FileHash) (audit.FileHash, bool) {
	rank := func(h audit.FileHash) int {
		var r, n int
		switch {
		case strings.EqualFold(h.Algo, "sha256"):
			r, n = 3, 64
		case strings.EqualFold(h.Algo, "sha1"):
			r, n = 2, 40
		case strings.EqualFold(h.Algo, "md5"):
			r, n = 1, 32
		}
		if len(h.Hex) != n || !anyCaseHex(h.Hex) {
			return 0
		}
		return r
	}
	best, br := -1, 0
	for i := range hs {
		if r := rank(hs[i]); r > br {
			best, br = i, r
		}
	}
	if best < 0 {
		return audit.FileHash{}, false
	}
	fh := hs[best]
	fh.Hex = strings.ToLower(fh.Hex)
	fh.Algo = strings.ToLower(fh.Algo)
	return fh, true
}

func anyCaseHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			continue
		}
		if c |= 0x20; c < 'a' || c > 'f' { // 0x20 folds A-F to a-f
			return false
		}
	}
	return true
}

// Close stops the worker (aborting a request in flight), writes the
// pending queue and the budget to vt.db and closes it. It returns within
// about a second and is safe to call more than once.
func (e *Enricher) Close() error {
	e.once.Do(func() {
		if e.cancel == nil {
			return
		}
		e.cancel()
		<-e.done
		e.closeErr = e.st.close()
		for _, u := range e.unregs {
			e.reg.Unregister(u[0], u[1])
		}
	})
	return e.closeErr
}

// setOver publishes the end of a day-or-longer budget block for Enrich.
// e.bmu must be held.
func (e *Enricher) setOver(now time.Time) {
	var n int64
	if t := e.b.overUntil(now); !t.IsZero() {
		n = t.UnixNano()
	}
	e.overUntil.Store(n)
}

// registerMetrics registers the counters (kept after Close, so that an
// enricher built later with the same registry continues them) and the
// gauges read from this enricher (removed by Close).
func (e *Enricher) registerMetrics(reg *metrics.Registry) {
	if reg == nil {
		reg = metrics.Default
	}
	e.reg = reg
	e.m.lookups = make(map[outcome]*metrics.Counter)
	for _, o := range outcomes {
		l := fmt.Sprintf(`outcome=%q`, string(o))
		e.m.lookups[o] = reg.Counter("audisp_enrich_vt_lookups_total", l, "VirusTotal API requests by outcome.")
	}
	e.m.skipped = make(map[string]*metrics.Counter)
	for _, r := range []string{ReasonAllowlisted, ReasonPackage, ReasonDisabled, ReasonNoHash, ReasonQueueFull} {
		l := fmt.Sprintf(`reason=%q`, r)
		e.m.skipped[r] = reg.Counter("audisp_enrich_vt_skipped_total", l, "Events whose hash was not looked up, by reason.")
	}
	e.m.cacheHit = reg.Counter("audisp_enrich_vt_cache_total", `result="hit"`, "VirusTotal cache look-ups by result.")
	e.m.cacheMiss = reg.Counter("audisp_enrich_vt_cache_total", `result="miss"`, "VirusTotal cache look-ups by result.")
	e.m.verdicts = reg.Counter("audisp_enrich_vt_verdicts_total", "", "Verdict documents emitted.")
	e.m.storeErrs = reg.Counter("audisp_enrich_vt_store_errors_total", "", "vt.db read or write failures.")
	for i, w := range []string{"minute", "day", "month"} {
		l := fmt.Sprintf(`window=%q`, w)
		reg.Func("audisp_enrich_vt_budget_remaining", l, "VirusTotal requests left in the window (-1: no limit).", func() float64 {
			e.bmu.Lock()
			defer e.bmu.Unlock()
			m, d, mo := e.b.remaining(e.tune.now())
			return float64([]int{m, d, mo}[i])
		})
		e.unregs = append(e.unregs, [2]string{"audisp_enrich_vt_budget_remaining", l})
	}
	reg.Func("audisp_enrich_vt_queue_depth", "", "Hashes waiting for a VirusTotal lookup.", func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(len(e.q.items))
	})
	e.unregs = append(e.unregs, [2]string{"audisp_enrich_vt_queue_depth", ""})
}

// marshalBudget returns the persisted form of the budget. e.bmu must be held.
func (e *Enricher) marshalBudget() []byte {
	b, _ := json.Marshal(&e.b) // plain data: cannot fail
	return b
}

// Settle waits until no hash waits for a lookup (each was looked up and its
// verdict document handed to the Emitter), or until ctx ends: a hash the
// budget holds back keeps it waiting. Replay calls it before closing, so
// that verdicts that can come at once are part of its output.
func (e *Enricher) Settle(ctx context.Context) {
	if e.cancel == nil {
		return
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	empty := 0
	for empty < 2 { // twice in a row: the last verdict document was handed on
		e.mu.Lock()
		n := len(e.q.items)
		e.mu.Unlock()
		if n == 0 {
			empty++
		} else {
			empty = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
