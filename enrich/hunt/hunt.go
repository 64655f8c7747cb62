// Package hunt matches events against hunting rules: executions from
// world-writable or hidden places, system utilities running from elsewhere,
// service accounts running shells or tools, servers spawning shells, known
// bad hashes. Rules are TOML; a built-in set (defaults.toml) covers the
// scenarios of the IMA hunting articles and users add their own.
//
// A matching rule adds a HuntHit to ev.Hunt, the tags "hunt:<rule>" and the
// rule's tags to ev.Tags, raises ev.Severity to the rule's severity, and
// appends the rule's ATT&CK technique (Source "hunt:<rule>") to
// ev.Techniques. Rules are evaluated in order: built-in rules first, then
// inline rules, then the rules file (a rule that replaces another keeps that
// one's place).
//
// Parent conditions use ev.Parent, ancestor conditions ev.Ancestry (or
// ev.Parent without it); for a process whose executable the process table
// could not read (another user's, read from /proc after the privilege
// drop), the name conditions test its comm and the path conditions fail.
// Verdict conditions use ev.Blocklist and
// ev.VirusTotal, and package_status uses ev.Package, so the hunt enricher
// must run after proc, blocklist, packages and virustotal.
package hunt

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"path"
	"slices"
	"sync"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

//go:embed defaults.toml
var defaultRules []byte

// DefaultRulesName is the file name errors in the built-in rules carry.
const DefaultRulesName = "builtin:defaults.toml"

// DefaultRules returns the text of the built-in rules.
func DefaultRules() []byte { return slices.Clone(defaultRules) }

// Enricher is the "hunt" enricher. It is immutable after New and safe for
// concurrent use.
type Enricher struct {
	rules     []*rule
	temp      dirSet
	system    dirSet
	needFiles bool
	imaExec   bool // Config.IMAAloneIsExec
	exes      *exeCache
	gate      gate
	events    *metrics.Counter
	hits      *metrics.Counter
	memo      enrich.ListMemo[rule] // what hits add to an event's lists
}

var _ enrich.Enricher = (*Enricher)(nil)

// New compiles the rules cfg selects. Every error names the rule, and the
// file and line for rules from a file (*RuleError). Its counters are
// registered in reg (nil: metrics.Default); enrichers built later with the
// same registry (a reload, the VirusTotal pass) add to the same ones.
func New(cfg Config, reg *metrics.Registry) (*Enricher, error) {
	return newEnricher(cfg, localUID, reg)
}

// builtinRules are the built-in rules compiled without a user name
// resolver, once (Validate looks up their names).
var builtinRules = sync.OnceValue(func() []*rule {
	rs, err := parseRules(DefaultRulesName, defaultRules, nil)
	if err != nil {
		panic("hunt: built-in rules: " + err.Error())
	}
	return rs
})

// newEnricher is New with the user name resolver given.
func newEnricher(cfg Config, lookupUser func(string) (uint32, bool), reg *metrics.Registry) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var set ruleSet
	if cfg.UseDefaults {
		rs, err := parseRules(DefaultRulesName, defaultRules, lookupUser)
		if err != nil {
			return nil, err
		}
		set.add(rs, DefaultRulesName)
	}
	inline, err := compileInline(cfg.Rules, lookupUser)
	if err != nil {
		return nil, err
	}
	set.add(inline, "config")
	if cfg.RulesFile != "" {
		data, err := os.ReadFile(cfg.RulesFile)
		if err != nil {
			return nil, fmt.Errorf("hunt: rules_file: %w", err)
		}
		rs, err := parseRules(cfg.RulesFile, data, lookupUser)
		if err != nil {
			return nil, err
		}
		set.add(rs, cfg.RulesFile)
	}
	for _, n := range cfg.Disable {
		if !set.remove(n) {
			return nil, fmt.Errorf("hunt: disable: no rule named %q", n)
		}
	}
	if reg == nil {
		reg = metrics.Default
	}
	e := &Enricher{rules: set.rules, temp: newDirSet(cfg.TempDirs), system: newDirSet(cfg.SystemDirs), exes: newExeCache(),
		imaExec: cfg.IMAAloneIsExec,
		events:  reg.Counter("audisp_enrich_hunt_events_total", "", "Events matched against the hunting rules."),
		hits:    reg.Counter("audisp_enrich_hunt_hits_total", "", "Hunting rule matches.")}
	for _, r := range e.rules {
		e.needFiles = e.needFiles || r.needFiles
	}
	e.gate = newGate(e.rules)
	slog.Info("hunt: rules loaded", "rules", len(e.rules), "builtin", cfg.UseDefaults, "file", cfg.RulesFile)
	return e, nil
}

// ruleSet is an ordered set of rules by name.
type ruleSet struct{ rules []*rule }

// add appends rs; a rule named like one already held replaces it in place.
func (s *ruleSet) add(rs []*rule, from string) {
	for _, r := range rs {
		if i := s.index(r.name); i >= 0 {
			slog.Info("hunt: rule replaced", "rule", r.name, "by", from)
			s.rules[i] = r
			continue
		}
		s.rules = append(s.rules, r)
	}
}

func (s *ruleSet) index(name string) int {
	return slices.IndexFunc(s.rules, func(r *rule) bool { return r.name == name })
}

func (s *ruleSet) remove(name string) bool {
	i := s.index(name)
	if i < 0 {
		return false
	}
	s.rules = slices.Delete(s.rules, i, i+1)
	return true
}

// checkUnique reports the first rule whose name an earlier rule of the same
// source already has.
func checkUnique(rs []*rule, file string) error {
	seen := make(map[string]int, len(rs))
	for i, r := range rs {
		if j, dup := seen[r.name]; dup {
			return &RuleError{File: file, Index: i, Rule: r.name,
				Err: fmt.Errorf("duplicate name (rule #%d has it too)", j+1)}
		}
		seen[r.name] = i
	}
	return nil
}

// Name returns "hunt".
func (e *Enricher) Name() string { return "hunt" }

// Rules returns the names of the active rules in evaluation order.
func (e *Enricher) Rules() []string {
	names := make([]string, len(e.rules))
	for i, r := range e.rules {
		names[i] = r.name
	}
	return names
}

// Enrich matches ev against every rule and records the hits (see the
// package doc). It never fails. It allocates nothing for an event no rule
// matches (unless a rule tests files and the event has relative PATH
// names, or its executable is not in the executable cache yet: see
// exeCache). For an event that matches it usually allocates nothing: the
// lists it makes for one list of rules on the same lists are shared by
// the events (see enrich.ListMemo); when they are made, ev.Hunt and the
// tags and techniques it grows share one block (see hitBlock).
func (e *Enricher) Enrich(_ context.Context, ev *audit.Event) error {
	var f facts
	cand := f.extract(ev, e)
	var matched [8]*rule
	hits, techs := matched[:0], 0
	try := func(i int) {
		if r := e.rules[i]; r.match(&f, e, i) {
			hits = append(hits, r)
			if r.tech != nil {
				techs++
			}
		}
	}
	// Rules in order: the first 64 that the gate leaves, then the others.
	for ; cand != 0; cand &= cand - 1 {
		try(bits.TrailingZeros64(cand))
	}
	for i := 64; i < len(e.rules); i++ {
		try(i)
	}
	e.events.Inc()
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
		blk := new(hitBlock)
		// An earlier pass (the rules that wait for VirusTotal run after
		// it) may have left hits, tags and techniques: they are kept, in
		// front.
		x.Hunt = append(blk.hits[:0], x.Hunt...)
		x.Tags = append(blk.tags[:0], x.Tags...)
		if techs > 0 {
			x.Techniques = append(blk.techs[:0], x.Techniques...)
		}
		for _, r := range hits {
			x.Hunt = append(x.Hunt, audit.HuntHit{Rule: r.name, Severity: r.severity, Tags: r.tags})
			x.AddTag(r.tag)
			for _, t := range r.tags {
				x.AddTag(t)
			}
			if r.tech != nil {
				x.Techniques = append(x.Techniques, *r.tech)
			}
		}
	})
	return nil
}

// hitBlock is the memory Enrich takes for a matching event: room for the
// usual number of hits, tags and techniques in one allocation (append
// grows past it like any slice).
type hitBlock struct {
	hits  [2]audit.HuntHit
	tags  [6]string
	techs [2]audit.Technique
}

// gate rules out, with a few bit operations per event, those of the first
// 64 rules (bit i for the i-th) that cannot match, so that Enrich calls
// match only for the others: what it rules out, match would reject.
type gate struct {
	all     uint64 // every rule (of the first 64)
	exec    uint64 // rules for execs only
	verdict uint64 // rules that need a blocklist or VirusTotal verdict
	pkg     uint64 // rules that need a package status
	exe     uint64 // rules with exe conditions
	files   uint64 // rules with file conditions
	parent  uint64 // rules with parent conditions
}

func newGate(rules []*rule) gate {
	var g gate
	for i, r := range rules[:min(len(rules), 64)] {
		bit := uint64(1) << i
		g.all |= bit
		if r.exec {
			g.exec |= bit
		}
		if r.blocklisted || r.vtMin > 0 {
			g.verdict |= bit
		}
		if len(r.pkgStatus) > 0 {
			g.pkg |= bit
		}
		if r.hasExeConds {
			g.exe |= bit
		}
		if r.needFiles {
			g.files |= bit
		}
		if !r.parent.empty() || !r.parentName.empty() {
			g.parent |= bit
		}
	}
	return g
}

// before returns the rules that f's exec, verdict and package facts leave
// possible.
func (g *gate) before(f *facts) uint64 {
	cand := g.all
	if !f.exec {
		cand &^= g.exec
	}
	if !f.blocklisted && f.vtMalicious == 0 {
		// A verdict rule needs one of them (vt_malicious_min is 1 or
		// more when set).
		cand &^= g.verdict
	}
	if f.pkgStatus == "" {
		// package_status holds statuses, never "".
		cand &^= g.pkg
	}
	return cand
}

// after narrows cand to the rules whose exe conditions one of f's
// executables meets (its facts carry the answer per rule, see
// exeFacts.rules); without executables, match decides.
func (g *gate) after(f *facts, cand uint64) uint64 {
	if f.nexes == 0 {
		return cand
	}
	var exes uint64
	for j := range f.nexes {
		exes |= f.exeInfo[j].rules
	}
	return cand &^ (g.exe &^ exes)
}

// match reports whether every condition of r, the i-th of e's rules, holds
// for f. Cheap conditions come first.
func (r *rule) match(f *facts, e *Enricher, i int) bool {
	if r.exec && !f.exec {
		return false
	}
	if len(r.pkgStatus) > 0 && !slices.Contains(r.pkgStatus, f.pkgStatus) {
		return false
	}
	if r.blocklisted || r.vtMin > 0 {
		if !(r.blocklisted && f.blocklisted) && !(r.vtMin > 0 && f.vtMalicious >= r.vtMin) {
			return false
		}
	}
	if r.hasExeConds && !r.matchExes(f, i) {
		return false
	}
	if !r.acct.empty() && !r.acct.match(f) {
		return false
	}
	if !r.parent.empty() || !r.parentName.empty() {
		if !(f.parentExe != "" && r.parent.match(f.parentExe) || f.parentBase != "" && r.parentName.match(f.parentBase)) {
			return false
		}
	}
	if r.ancDepth > 0 && !r.matchAncestors(f) {
		return false
	}
	if !r.key.empty() && !anyOf(f.keys[:f.nkeys], r.key.match) {
		return false
	}
	if r.needFiles {
		files := f.files[:f.nfiles]
		if !r.file.empty() && !anyOf(files, r.file.match) ||
			r.fileInTemp && !anyOf(files, e.temp.under) ||
			r.fileHidden && !anyOf(files, hidden) {
			return false
		}
	}
	return true
}

// matchExes reports whether one executable of f meets all of r's exe
// conditions (r is the i-th rule: the executable's facts carry the answer
// for the first 64 rules). With no executable known only exe_not can hold.
func (r *rule) matchExes(f *facts, i int) bool {
	if f.nexes == 0 {
		return !r.exeInTemp && !r.exeHidden && !r.exeOutside && r.exeName.empty() && r.exe.empty()
	}
	for j, x := range f.exes[:f.nexes] {
		xf := &f.exeInfo[j]
		if i < 64 && xf.rules&(1<<i) != 0 || i >= 64 && r.exeHolds(x, xf) {
			return true
		}
	}
	return false
}

// exeHolds reports whether the executable x, with facts xf, meets all of
// r's exe conditions.
func (r *rule) exeHolds(x string, xf *exeFacts) bool {
	return (r.exeName.empty() || r.exeName.match(xf.base)) &&
		(!r.exeInTemp || xf.inTemp) &&
		(!r.exeHidden || xf.hidden) &&
		(!r.exeOutside || !xf.system) &&
		(r.exe.empty() || r.exe.match(x)) &&
		(r.exeNot.empty() || !r.exeNot.match(x))
}

// matchAncestors reports whether one of the first r.ancDepth ancestors of
// f (f.ancestry, else the parent alone) meets r's ancestor condition.
func (r *rule) matchAncestors(f *facts) bool {
	if len(f.ancestry) == 0 {
		return r.ancestorHolds(f.ancParent)
	}
	for _, p := range f.ancestry[:min(r.ancDepth, len(f.ancestry))] {
		if r.ancestorHolds(p) {
			return true
		}
	}
	return false
}

// ancestorHolds reports whether p's executable is known and its clean
// path or its base name meets r's ancestor condition, or, when only p's
// comm is known, whether that meets the name condition.
func (r *rule) ancestorHolds(p *audit.Process) bool {
	if p == nil {
		return false
	}
	if p.Executable == "" {
		return p.Comm != "" && r.ancestorName.match(p.Comm)
	}
	x := path.Clean(p.Executable)
	return r.ancestor.match(x) || r.ancestorName.match(path.Base(x))
}

func anyOf(ss []string, pred func(string) bool) bool {
	for _, s := range ss {
		if pred(s) {
			return true
		}
	}
	return false
}
