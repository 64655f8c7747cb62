// Package sigma evaluates Sigma rules (https://sigmahq.io) on every event:
// rules whose logsource is product linux with service auditd, or category
// process_creation, file_event or network_connection. docs/sigma.md
// describes the supported language and the field mapping.
//
// Rules are compiled into matchers over lower-cased strings once, at load;
// a rule that uses something the engine does not implement, or that is
// malformed, is reported (Problem) and skipped while the others load.
//
// A matching rule adds a SigmaHit to ev.Sigma, the tags "sigma:<id>" and
// "sigma_level:<level>" to ev.Tags (so that sink filters can select on
// them), its ATT&CK technique tags to ev.Techniques (Source "sigma:<id>"),
// and raises ev.Severity to its level (low 1 ... critical 4). Each rule
// adds at most one hit per event; hits come in rule load order.
package sigma

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Config configures the Sigma rules ([enrich.sigma] in the config file).
type Config struct {
	// Rules lists rule files and directories (walked for *.yml and
	// *.yaml). Empty (the default) turns the enricher off.
	Rules []string `toml:"rules"`
	// ReloadInterval is how often the rule files are checked for changes
	// (a file added, removed, or changed in size, mtime or inode); a change
	// reloads the rules. 0 turns the polling off (SIGHUP still reloads).
	// Default 10s.
	ReloadInterval time.Duration `toml:"reload_interval"`
}

// DefaultConfig returns the defaults: no rules, polled every 10 s.
func DefaultConfig() Config { return Config{ReloadInterval: 10 * time.Second} }

// Validate checks the options themselves; the rules are checked by Load.
func (c *Config) Validate() error {
	for _, p := range c.Rules {
		if p == "" {
			return errors.New("sigma: rules: empty path")
		}
	}
	if c.ReloadInterval < 0 {
		return fmt.Errorf("sigma: reload_interval %v is negative", c.ReloadInterval)
	}
	return nil
}

// Enricher is the "sigma" enricher. Enrich is safe for concurrent use,
// also with Reload: each event sees one whole rule set.
type Enricher struct {
	cfg      Config
	log      *slog.Logger
	set      atomic.Pointer[Set]
	reloadMu sync.Mutex // serializes Reload and the poller
	stop     chan struct{}
	done     chan struct{}
	closed   sync.Once

	events, hits, skipped, reloads *metrics.Counter
	memo                           enrich.ListMemo[Rule] // what hits add to an event's lists
}

var _ enrich.Enricher = (*Enricher)(nil)

// New loads the configured rules and logs every rule it skips. The error
// is non-nil only when a configured path cannot be read. Its counters are
// registered in reg (nil: metrics.Default); enrichers built later with the
// same registry (a reload) add to the same ones.
func New(cfg Config, log *slog.Logger, reg *metrics.Registry) (*Enricher, error) {
	return NewAfter(cfg, log, reg, nil)
}

// NewAfter is New for a reload that changed the settings: a rule file
// that is now broken keeps the rules running (the enricher being
// replaced, nil for none) loaded from it, as Reload does.
func NewAfter(cfg Config, log *slog.Logger, reg *metrics.Registry, running *Enricher) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var prev *Set
	if running != nil {
		prev = running.Set()
	}
	s, err := loadWith(cfg.Rules, prev)
	if err != nil {
		return nil, err
	}
	if reg == nil {
		reg = metrics.Default
	}
	e := &Enricher{cfg: cfg, log: log,
		events:  reg.Counter("audisp_enrich_sigma_events_total", "", "Events matched against the Sigma rules."),
		hits:    reg.Counter("audisp_enrich_sigma_hits_total", "", "Sigma rule matches."),
		skipped: reg.Counter("audisp_enrich_sigma_rules_skipped_total", "", "Sigma rules not loaded (unsupported or invalid), counted at every load."),
		reloads: reg.Counter("audisp_enrich_sigma_reloads_total", "", "Sigma rule reloads."),
	}
	e.install(s)
	if cfg.ReloadInterval > 0 && len(cfg.Rules) > 0 {
		e.stop, e.done = make(chan struct{}), make(chan struct{})
		go e.watch(cfg.ReloadInterval)
	}
	return e, nil
}

// Reload loads the rules again. A file whose rules are now malformed or
// unreadable keeps the rules it had; on error (a configured path is gone)
// the whole previous set stays.
func (e *Enricher) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	s, err := loadWith(e.cfg.Rules, e.set.Load())
	if err != nil {
		return err
	}
	e.reloads.Inc()
	e.install(s)
	return nil
}

// Close stops the poller. The enricher keeps matching with the rules it
// holds. Close may be called more than once.
func (e *Enricher) Close() error {
	e.closed.Do(func() {
		if e.stop != nil {
			close(e.stop)
			<-e.done
		}
	})
	return nil
}

// watch reloads the rules when their files change, every interval until
// Close.
func (e *Enricher) watch(interval time.Duration) {
	defer close(e.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if stamp(e.cfg.Rules) == e.set.Load().stamp {
				continue
			}
			if err := e.Reload(); err != nil {
				e.log.Error("sigma: reload failed; previous rules stay in use", "err", err)
			}
		}
	}
}

func (e *Enricher) install(s *Set) {
	for _, p := range s.Problems {
		e.log.Warn("sigma: rule skipped", "file", p.File, "line", p.Line, "unsupported", p.Unsupported, "reason", p.Reason)
	}
	for _, w := range s.Warnings {
		e.log.Warn("sigma: " + w)
	}
	e.skipped.Add(uint64(len(s.Problems)))
	e.log.Info("sigma: rules loaded", "loaded", fmt.Sprint(s.Loaded), "skipped", fmt.Sprint(s.Skipped))
	e.set.Store(s)
}

// Set returns the rule set in use.
func (e *Enricher) Set() *Set { return e.set.Load() }

// Name returns "sigma".
func (e *Enricher) Name() string { return "sigma" }

// Enrich evaluates every rule on ev and records the matches (see the
// package doc). It never fails.
func (e *Enricher) Enrich(_ context.Context, ev *audit.Event) error {
	e.events.Inc()
	var buf [8]*Rule
	hits := e.set.Load().match(ev, buf[:0])
	if len(hits) == 0 {
		return nil
	}
	e.hits.Add(uint64(len(hits)))
	for _, r := range hits {
		ev.Severity = max(ev.Severity, r.severity)
	}
	// The same rules on the same lists make the same lists: the memo
	// hands out one shared copy (see enrich.ListMemo).
	e.memo.Add(ev, hits, func(x *audit.Enrichment) {
		// Grow each list once for all the hits.
		ntags, ntechs := 0, 0
		for _, r := range hits {
			ntags += len(r.hitTags)
			ntechs += len(r.techs)
		}
		x.Sigma = slices.Grow(x.Sigma, len(hits))
		x.Tags = slices.Grow(x.Tags, ntags)
		x.Techniques = slices.Grow(x.Techniques, ntechs)
		for _, r := range hits {
			x.Sigma = append(x.Sigma, audit.SigmaHit{ID: r.ID, Title: r.Title, Level: r.Level, Author: r.Author, Tags: r.Tags})
			for _, t := range r.hitTags {
				x.AddTag(t)
			}
			x.Techniques = append(x.Techniques, r.techs...)
		}
	})
	return nil
}

// match appends the rules of s that match ev to dst, in load order per
// kind (auditd, process_creation, file_event, network_connection).
func (s *Set) match(ev *audit.Event, dst []*Rule) []*Rule {
	if ev.Kind != audit.KindAudit {
		return dst
	}
	sum := audit.SummaryOf(ev)
	a := auditCtxPool.Get().(*auditCtx)
	a.ev, a.s, a.types, a.execves, a.arena = ev, sum, 0, 0, a.arena[:0]
	a.shared, a.exeShared, a.cmdShared = a.shared[:0], false, false
	defer func() {
		a.ev, a.s = nil, nil
		a.doc.reset(nil)
		auditCtxPool.Put(a)
	}()
	if x := s.idx[kindAuditd]; x != nil && len(x.rules) > 0 {
		if p := s.idx[kindProcess]; x.lits != nil && p != nil && p.lits == x.lits {
			a.shared = slices.Grow(a.shared, x.lits.words())[:x.lits.words()]
			clear(a.shared)
		}
		for _, r := range ev.Records {
			if r != nil {
				a.types |= typeBit(r.TypeNum)
				if r.TypeNum == 1309 {
					a.execves++
				}
			}
		}
		for _, i := range x.candidates(a, a) {
			if r := x.rules[i]; r.evalRecords(a) {
				dst = append(dst, r)
			}
		}
	}
	if x := s.idx[kindProcess]; x != nil && len(x.rules) > 0 && sum.Exec {
		d := &a.doc
		d.reset(&a.scratch)
		d.setProcess(sum, ev.Parent)
		for _, i := range x.candidates(a, d) {
			if r := x.rules[i]; r.evalDoc(d) {
				dst = append(dst, r)
			}
		}
	}
	if rs := s.byKind[kindFile]; len(rs) > 0 && sum.Outcome == "success" {
		var fbuf [4]string
		files := createdFiles(ev, sum, fbuf[:0])
		docs := make([]doc, len(files))
		for i := range docs {
			docs[i].reset(&a.scratch)
			docs[i].setProcess(sum, ev.Parent)
			docs[i].set(fTargetFilename, files[i])
		}
		dst = matchAny(rs, docs, dst)
	}
	if rs := s.byKind[kindNetwork]; len(rs) > 0 && initiatedConnect(ev, sum) {
		var abuf [2][2]string
		addrs := destinations(ev, abuf[:0])
		docs := make([]doc, len(addrs))
		for i := range docs {
			docs[i].reset(&a.scratch)
			docs[i].setProcess(sum, ev.Parent)
			docs[i].set(fInitiated, "true")
			docs[i].set(fDestinationIP, addrs[i][0])
			docs[i].set(fDestinationPort, addrs[i][1])
		}
		dst = matchAny(rs, docs, dst)
	}
	return dst
}

// matchAny appends each rule that matches one of docs to dst.
func matchAny(rules []*Rule, docs []doc, dst []*Rule) []*Rule {
	if len(docs) == 0 {
		return dst
	}
	for _, r := range rules {
		for i := range docs {
			if r.evalDoc(&docs[i]) {
				dst = append(dst, r)
				break
			}
		}
	}
	return dst
}
