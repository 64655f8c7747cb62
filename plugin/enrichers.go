package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/blocklist"
	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/enrich/hashes"
	"github.com/audisp-enrich/audisp-enrich/enrich/hunt"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/enrich/proc"
	"github.com/audisp-enrich/audisp-enrich/enrich/sigma"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// enrichers is the configured enricher chain plus what must be reloaded or
// closed with it.
type enrichers struct {
	chain     []enrich.Enricher
	proc      *proc.Table
	blocklist *blocklist.Enricher
	packages  *packages.Enricher
	pkgKept   bool // packages is the running pipeline's (a reload that kept its settings); close leaves it
	sigma     *sigma.Enricher
	sigmaKept bool // sigma is the running pipeline's (a reload that kept its settings); close leaves it
	vt        *virustotal.Enricher
	vtCfg     virustotal.Config // the settings vt runs with; zero when none runs
	vtKept    bool              // vt is the running pipeline's (a reload that kept its settings); close leaves it
	vtAt      int               // vt's index in chain
	// verdicts is the hunting pass of the rules that test a verdict (nil
	// when there are none); it also judges the verdict documents
	// VirusTotal and the fleet emit (judgeVerdict).
	verdicts  enrich.Enricher
	fleet     *fleet.Host      // in vt's place when [enrich.fleet] is on
	fleetCfg  fleet.HostConfig // the settings fleet runs with; zero when none runs
	fleetKept bool             // fleet is the running pipeline's (a reload that kept its settings); close leaves it
	fleetAt   int              // fleet's index in chain
}

// buildEnrichers builds the chain in dependency order: hashes and the
// process table first, then ATT&CK tags, blocklists, package trust, the
// hunting rules (they read the parent and ancestors, the keys, the
// blocklist result and the package status), the Sigma rules (they read
// the parent), VirusTotal
// (it needs the allowlist result and the package status, and the severity
// for its priority), and
// last the hunting rules that test a verdict (they see verdicts that were
// cached or arrived within max_wait).
//
// VirusTotal: with vt set, that running enricher takes its place in the
// chain (a reload that kept it: keptVT, so it runs with c's settings);
// with vtLater, the place is left for openVT (a reload that replaces it:
// only one enricher may hold vt.db, so the new one opens after the old
// one closed); otherwise a new one is started.
//
// The fleet host: as VirusTotal, with fl set the running host takes its
// place; with flLater the place is left for openFleet (only one host may
// hold the sightings spool's lock); otherwise a new one is started.
//
// The process table: with pt set (a reload that kept [enrich.proc]), that
// running table, and what it knows, takes its place; otherwise a new,
// empty one is made.
//
// Sigma: with sg set and sgKeep (a reload that kept [enrich.sigma]), that
// running enricher and its rules take their place; with sg set otherwise,
// the new one loads with sg's rules as the previous set, so that a broken
// file keeps its rules (sigma.NewAfter).
//
// Package trust: with pk set (a reload that kept [enrich.packages]), that
// running enricher and its index take their place in the chain;
// otherwise a new one is started (a reload hands it the running one's
// index to answer until its own has published, see Reload).
func buildEnrichers(c *conf.EnrichConfig, emit enrich.Emitter, log *slog.Logger, reg *metrics.Registry, vt *virustotal.Enricher, vtLater bool, fl *fleet.Host, flLater bool, pt *proc.Table, sg *sigma.Enricher, sgKeep bool, pk *packages.Enricher) (*enrichers, error) {
	e := &enrichers{}
	if c.Hashes.Enabled {
		e.chain = append(e.chain, hashes.New(reg))
	}
	if c.Proc.Enabled {
		if pt == nil {
			var err error
			if pt, err = proc.New(c.Proc, reg); err != nil {
				return nil, err
			}
		}
		e.proc = pt
		e.chain = append(e.chain, pt)
	}
	if c.Attack.Enabled {
		a, err := attack.New(c.Attack, reg)
		if err != nil {
			return nil, err
		}
		e.chain = append(e.chain, a)
	}
	if c.Blocklist.Enabled && len(c.Blocklist.Lists) > 0 {
		b, err := blocklist.New(c.Blocklist, log, reg)
		if err != nil {
			return nil, err
		}
		e.blocklist = b
		e.chain = append(e.chain, b)
	}
	if c.Packages.Enabled {
		if e.packages, e.pkgKept = pk, pk != nil; pk == nil {
			e.packages = packages.New(c.Packages, log, reg)
		}
		e.chain = append(e.chain, e.packages)
	}
	// Hunting rules run before VirusTotal, so that the hashes they flag
	// are looked up first; the rules that test a VirusTotal verdict run
	// after it, as a second pass.
	var vtRules []string
	if c.Hunt.Enabled && (c.VirusTotal.Enabled || c.Fleet.Enabled) {
		var err error
		if vtRules, err = verdictRules(c.Hunt); err != nil {
			e.close()
			return nil, err
		}
	}
	if c.Hunt.Enabled {
		hc := c.Hunt
		hc.Disable = append(slices.Clone(hc.Disable), vtRules...)
		h, err := hunt.New(hc, reg)
		if err != nil {
			e.close()
			return nil, err
		}
		e.chain = append(e.chain, h)
	}
	if len(c.Sigma.Rules) > 0 {
		if sg != nil && sgKeep {
			e.sigma, e.sigmaKept = sg, true
		} else {
			// sg, the running enricher, is not e's: a failure here leaves
			// it running (e.close does not see it).
			s, err := sigma.NewAfter(c.Sigma, log, reg, sg)
			if err != nil {
				e.close()
				return nil, err
			}
			e.sigma = s
		}
		e.chain = append(e.chain, e.sigma)
	}
	if c.VirusTotal.Enabled {
		switch {
		case vt != nil:
			e.vt, e.vtCfg, e.vtKept = vt, c.VirusTotal, true
		case !vtLater:
			v, err := virustotal.New(c.VirusTotal, emit, log, reg)
			if err != nil {
				e.close()
				return nil, err
			}
			e.vt, e.vtCfg = v, c.VirusTotal
		}
		e.vtAt = len(e.chain)
		e.chain = append(e.chain, e.vt) // nil until openVT when vtLater
	}
	if c.Fleet.Enabled {
		switch {
		case fl != nil:
			e.fleet, e.fleetCfg, e.fleetKept = fl, c.Fleet, true
		case !flLater:
			f, err := fleet.NewHost(c.Fleet, emit, log, reg)
			if err != nil {
				e.close()
				return nil, err
			}
			e.fleet, e.fleetCfg = f, c.Fleet
		}
		e.fleetAt = len(e.chain)
		e.chain = append(e.chain, e.fleet) // nil until openFleet when flLater
	}
	if len(vtRules) > 0 {
		all, err := hunt.New(c.Hunt, reg)
		if err != nil {
			e.close()
			return nil, err
		}
		hc := c.Hunt
		for _, name := range all.Rules() {
			if !slices.Contains(vtRules, name) {
				hc.Disable = append(hc.Disable, name)
			}
		}
		hc.Disable = slices.Compact(slices.Sorted(slices.Values(hc.Disable)))
		h, err := hunt.New(hc, reg)
		if err != nil {
			e.close()
			return nil, err
		}
		e.verdicts = renamed{h, "hunt_virustotal"}
		e.chain = append(e.chain, e.verdicts)
	}
	return e, nil
}

// judgeVerdict runs the rules that test a verdict over a verdict document
// (audit.KindVerdict), so that a verdict that arrived after its events
// were sent (max_wait) still raises its hunting hits and severity. The
// document carries the verdict and the hash but no records: a rule that
// also tests the event (its executable, user, parent, keys) cannot match
// here; it matches only verdicts that arrive within max_wait or come from
// the cache. Other documents are left alone.
func (e *enrichers) judgeVerdict(ev *audit.Event) {
	if e.verdicts == nil || ev.Kind != audit.KindVerdict {
		return
	}
	// The hunt enricher neither blocks nor fails (its Enrich returns nil).
	_ = e.verdicts.Enrich(context.Background(), ev)
}

// verdictRules names the enabled hunting rules that test a VirusTotal
// verdict (vt_malicious_min), in the order built-in, inline, rules file,
// where a later rule of the same name replaces an earlier one.
func verdictRules(c hunt.Config) ([]string, error) {
	byName := map[string]hunt.RuleConfig{}
	add := func(rs []hunt.RuleConfig) {
		for _, r := range rs {
			byName[r.Name] = r
		}
	}
	if c.UseDefaults {
		rs, err := hunt.ParseRules("built-in rules", hunt.DefaultRules())
		if err != nil {
			return nil, err
		}
		add(rs)
	}
	add(c.Rules)
	if c.RulesFile != "" {
		data, err := os.ReadFile(c.RulesFile)
		if err != nil {
			return nil, err
		}
		rs, err := hunt.ParseRules(c.RulesFile, data)
		if err != nil {
			return nil, err
		}
		add(rs)
	}
	var out []string
	for name, r := range byName {
		if r.VTMaliciousMin > 0 && !slices.Contains(c.Disable, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// unchanged returns running when its section's settings did not change
// (old and new are deeply equal), else the zero T: a reload carries a
// running enricher, and its state, into the new chain only when nothing
// it was built from changed.
func unchanged[T any](running T, old, new any) T {
	if reflect.DeepEqual(old, new) {
		return running
	}
	var zero T
	return zero
}

// renamed gives an enricher another name (for logs, warnings and metrics).
type renamed struct {
	enrich.Enricher
	name string
}

func (r renamed) Name() string { return r.name }

// reload re-reads the hash lists and the Sigma rules (SIGHUP).
func (e *enrichers) reload(log *slog.Logger) {
	if e.sigma != nil {
		if err := e.sigma.Reload(); err != nil {
			log.Error("sigma reload failed; previous rules stay in use", "err", err)
		}
	}
	if e.blocklist != nil {
		if err := e.blocklist.Reload(); err != nil {
			log.Error("blocklist reload failed; previous lists stay in use", "err", err)
		}
	}
}

// keptVT returns the running VirusTotal enricher when a reload to the
// settings c keeps it: it runs (with the settings it records, vtCfg,
// deeply equal to c) and its key was not rejected (the new one reads the
// key again, so a SIGHUP after api_key_file was fixed brings lookups
// back). Otherwise nil: the reload replaces it after the swap (openVT).
func (e *enrichers) keptVT(c virustotal.Config) *virustotal.Enricher {
	vt := unchanged(e.vt, e.vtCfg, c)
	if vt != nil && vt.Disabled() {
		return nil
	}
	return vt
}

// openVT starts the VirusTotal enricher whose place buildEnrichers left
// (vtLater) with c; if that fails it tries prev, the settings of the
// enricher the reload replaced (zero when none ran), and if that fails
// too, or none ran, the chain goes on without VirusTotal. Each failure is
// logged. vtCfg records the settings that started, so that a later reload
// to c, with a fixed cause, tries c again (keptVT).
func (e *enrichers) openVT(c, prev *virustotal.Config, emit enrich.Emitter, log *slog.Logger, reg *metrics.Registry) {
	if !c.Enabled {
		return
	}
	started := c
	v, err := virustotal.New(*c, emit, log, reg)
	if err != nil && prev.Enabled {
		log.Error("reload: virustotal could not start with the new settings; starting it with the previous ones", "err", err)
		started = prev
		v, err = virustotal.New(*prev, emit, log, reg)
	}
	if err != nil {
		log.Error("reload: virustotal could not start; running without it", "err", err)
		e.chain = slices.Delete(e.chain, e.vtAt, e.vtAt+1)
		return
	}
	e.vt, e.vtCfg = v, *started
	e.chain[e.vtAt] = v
}

// closeVT closes the VirusTotal enricher unless it is the running
// pipeline's (vtKept); a reload calls it before a new one opens vt.db.
func (e *enrichers) closeVT() {
	if e.vt != nil && !e.vtKept {
		_ = e.vt.Close()
		e.vt, e.vtCfg = nil, virustotal.Config{}
	}
}

// keptFleet returns the running fleet host when a reload to the settings
// c keeps it: it runs, with the settings it records (fleetCfg) deeply
// equal to c. Otherwise nil: the reload replaces it after the swap
// (openFleet). A host that runs the previous settings because c could
// not start is not kept, so a reload after the cause was fixed starts c.
func (e *enrichers) keptFleet(c fleet.HostConfig) *fleet.Host {
	return unchanged(e.fleet, e.fleetCfg, c)
}

// openFleet starts the fleet host whose place buildEnrichers left
// (flLater) with c; if that fails it tries prev, the settings of the host
// the reload replaced (zero when none ran), and if that fails too, or
// none ran, the chain goes on without the fleet (events get no virustotal
// field). Each failure is logged. fleetCfg records the settings that
// started, so that a later reload to c, with a fixed cause, tries c again
// (keptFleet).
func (e *enrichers) openFleet(c, prev *fleet.HostConfig, emit enrich.Emitter, log *slog.Logger, reg *metrics.Registry) {
	if !c.Enabled {
		return
	}
	started := c
	f, err := fleet.NewHost(*c, emit, log, reg)
	if err != nil && prev.Enabled {
		log.Error("reload: fleet could not start with the new settings; starting it with the previous ones", "err", err)
		started = prev
		f, err = fleet.NewHost(*prev, emit, log, reg)
	}
	if err != nil {
		log.Error("reload: fleet could not start; running without it", "err", err)
		e.chain = slices.Delete(e.chain, e.fleetAt, e.fleetAt+1)
		return
	}
	e.fleet, e.fleetCfg = f, *started
	e.chain[e.fleetAt] = f
}

// closeFleet closes the fleet host unless it is the running pipeline's
// (fleetKept); a reload calls it before a new host takes the spool's lock.
func (e *enrichers) closeFleet() {
	if e.fleet != nil && !e.fleetKept {
		_ = e.fleet.Close()
		e.fleet, e.fleetCfg = nil, fleet.HostConfig{}
	}
}

func (e *enrichers) close() {
	if e.sigma != nil && !e.sigmaKept {
		_ = e.sigma.Close()
	}
	e.closeVT()
	e.closeFleet()
	if e.blocklist != nil {
		_ = e.blocklist.Close()
	}
	if e.packages != nil && !e.pkgKept {
		e.packages.Close()
	}
}

// waitPackages lets the package index finish (hashing at full speed)
// before replay judges events, so a replayed log gets the answers the live
// plugin gives; with progress set (a terminal) it writes a progress line
// there. It does nothing when the enricher is off, and only logs when the
// package database cannot be read. Plugin mode never calls it.
func (e *enrichers) waitPackages(ctx context.Context, log *slog.Logger, progress io.Writer) error {
	if e.packages == nil {
		return nil
	}
	var show func(done, total int)
	if progress != nil {
		last := time.Now()
		show = func(done, total int) {
			if done == total || time.Since(last) > 250*time.Millisecond {
				last = time.Now()
				fmt.Fprintf(progress, "\rpackages: hashing package files %d/%d", done, total)
				if done == total {
					fmt.Fprintln(progress)
				}
			}
		}
	}
	start := time.Now()
	if err := e.packages.Index().Wait(ctx, show); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// No package database: events say unindexed, as in plugin mode.
		log.Error("packages: no index for this replay", "err", err)
		return nil
	}
	st := e.packages.Index().Stats()
	log.Info("packages: index ready", "files", st.Files, "hashed", st.Hashed, "reused", st.Reused,
		"modified", st.Modified, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// packageStats returns the package index's figures for the status report;
// false when the enricher is off.
func (p *Pipeline) packageStats() (packages.Stats, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.enr == nil || p.enr.packages == nil {
		return packages.Stats{}, false
	}
	return p.enr.packages.Index().Stats(), true
}
