// Package plugin is the audisp-enrich program: it wires the stdin reader,
// the parser and reassembler, the enrichment pool and the sinks together,
// and handles signals, reloads and status reports.
package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/output"
)

// FlushInterval is how often, at most, plugin mode flushes the local
// sinks (stdout, file) while events come in. A document waits in a local
// sink's batch for less than twice this (the last batch before a pause is
// flushed FlushInterval after it at the latest).
const FlushInterval = 50 * time.Millisecond

// liveGCPercent is plugin mode's GOGC unless the GOGC environment variable
// says otherwise (replay sets its own). Plugin mode's live heap is a few
// MB and it collects about once a second at 1000 events/s, so collecting
// at half the heap's growth costs no measurable CPU and keeps about 1 MB
// less resident (TestPacedCost at 1000 events/s, 20 s, two runs each:
// peak RSS 19.1-19.3 against 20.1-20.8 MiB, CPU 6.1-6.5 % against
// 5.6-6.5 % of a core under a load of 15-19; docs/performance.md).
const liveGCPercent = 50

// ShutdownGrace is how long shutdown may take after EOF or SIGTERM.
const ShutdownGrace = 900 * time.Millisecond

// Pipeline is parse → reassemble → enrich → encode → sinks. Lines go in
// through handle (one goroutine); events come out of the pool in input
// order on the pool's emitting goroutine.
type Pipeline struct {
	cfg    *conf.Config
	log    *slog.Logger
	reg    *metrics.Registry
	parser audit.Parser
	reasm  *audit.Reassembler
	errlog *errorLog

	// mu guards pool and held. pool and out are replaced only by the
	// reading goroutine (Reload, Close), so it reads them without mu.
	mu   sync.Mutex
	pool *enrich.Pool
	// held keeps the documents enrichers emit while a reload swaps pools
	// (holding); the new pool takes them first.
	held    []*audit.Event
	holding bool
	enr     *enrichers
	out     *output.Stage

	alerts *sinks.Alerts // coalesces sinks' loss reports into alert documents
	// kick has a value when a document was emitted outside the input
	// stream (emitDocument) and waits in the output stage for a flush.
	kick chan struct{}

	parsed   *metrics.Counter
	records  uint64 // lines parsed into records by this pipeline (handle's goroutine)
	badLines map[string]*metrics.Counter
	events   *metrics.Counter
	inFlight *metrics.Gauge
	latency  *metrics.Histogram
}

// NewPipeline builds every stage from cfg. streamTime selects replay
// semantics (the end-of-event timeout runs on record time).
func NewPipeline(cfg *conf.Config, log *slog.Logger, reg *metrics.Registry, streamTime bool) (*Pipeline, error) {
	errlog, err := newErrorLog(cfg.Log.ParseErrors, cfg.Log.ParseErrorRate, log)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		cfg: cfg, log: log, reg: reg, errlog: errlog, kick: make(chan struct{}, 1),
		parsed:   reg.Counter("audisp_enrich_records_parsed_total", "", "Records parsed."),
		events:   reg.Counter("audisp_enrich_events_total", "", "Events emitted (audit, verdict and alert documents)."),
		inFlight: reg.Gauge("audisp_enrich_events_in_flight", "", "Events being reassembled."),
		latency:  reg.Histogram("audisp_enrich_event_latency_seconds", "", "Time from the event's last record to its hand-off to the sinks.", 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1, 2.5, 5),
		badLines: map[string]*metrics.Counter{},
	}
	for _, r := range []string{"no_type", "no_msg", "bad_timestamp", "truncated", "other"} {
		p.badLines[r] = reg.Counter("audisp_enrich_parse_errors_total", `reason="`+r+`"`, "Lines that are not audit records, by reason.")
	}
	hold := audit.DefaultHold
	if !streamTime {
		// The rest of an event may wait in the pipe for input.coalesce
		// after the reader took its first record: hold longer than that.
		hold = max(hold, cfg.Input.Coalesce+30*time.Millisecond)
	}
	p.reasm = audit.NewReassembler(audit.ReassemblerConfig{
		Timeout: cfg.Reassembly.EOETimeout, MaxInFlight: cfg.Reassembly.MaxInFlight, StreamTime: streamTime, Hold: hold,
	}, p.submit)
	reg.Func("audisp_enrich_reassembler_evicted_total", "", "Events closed early because too many were in flight.", func() float64 { return float64(p.reasm.Stats().Evicted) })
	reg.Func("audisp_enrich_reassembler_timed_out_total", "", "Events closed by the end-of-event timeout.", func() float64 { return float64(p.reasm.Stats().TimedOut) })
	reg.Func("audisp_enrich_reassembler_late_records_total", "", "Records that arrived after their event was emitted (in documents flagged event.late).", func() float64 { return float64(p.reasm.Stats().Late) })
	reg.Func("audisp_enrich_reassembler_stray_eoe_total", "", "EOE records that closed no event (its event was already emitted, or none of its records was accepted).", func() float64 { return float64(p.reasm.Stats().StrayEOE) })
	reg.Func("audisp_enrich_lost_hint_total", "", "Serials never seen (gaps); a hint, the kernel lost counter is authoritative.", func() float64 { return float64(p.reasm.LostHint()) })
	p.alerts = sinks.NewAlerts(time.Second, p.alert)
	if err := p.build(cfg); err != nil {
		errlog.close()
		return nil, err
	}
	return p, nil
}

// build creates the enrichers, the sinks and the pool for cfg.
func (p *Pipeline) build(cfg *conf.Config) error {
	out, err := output.New(cfg, cfg.Enrich.Workers, p.outputOptions())
	if err != nil {
		return err
	}
	enr, err := buildEnrichers(&cfg.Enrich, emitterFunc(p.emitDocument), p.log, p.reg, nil, false, nil, false, nil, nil, false, nil)
	if err != nil {
		out.Discard()
		return err
	}
	out.Start(context.Background(), nil)
	pool := p.newPool(cfg, enr, out)
	p.mu.Lock()
	p.out, p.enr, p.pool = out, enr, pool
	p.mu.Unlock()
	return nil
}

func (p *Pipeline) outputOptions() output.Options {
	return output.Options{Metrics: p.reg, Logger: p.log, OnDrop: p.alerts.Add}
}

// newPool starts the enrichment pool that runs enr and hands its documents
// to out; the workers encode them for out.
func (p *Pipeline) newPool(cfg *conf.Config, enr *enrichers, out *output.Stage) *enrich.Pool {
	return enrich.NewPool(enr.chain, cfg.Enrich.Workers, cfg.Enrich.Queue, cfg.Enrich.Timeout, p.reg, out.Encode,
		func(ev *audit.Event, doc []byte) { p.deliver(out, ev, doc) })
}

type emitterFunc func(*audit.Event)

func (f emitterFunc) Emit(ev *audit.Event) { f(ev) }

// emitDocument takes verdict and alert documents from enrichers; they join
// the ordered stream like events. A verdict document first goes through
// the hunting rules that test a verdict (enrichers.judgeVerdict).
//
// The lock is held across Submit so that a pool is never closed under a
// submitter; Submit only waits for the pool, which drains on its own.
// Documents that arrive while a reload swaps pools wait for the new pool
// (at most maxHeld; more are dropped and logged). Those that arrive when
// no pool runs (shutdown) are dropped: the VirusTotal queue keeps their
// hashes for the next start.
func (p *Pipeline) emitDocument(ev *audit.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.enr != nil {
		p.enr.judgeVerdict(ev)
	}
	switch {
	case p.pool != nil:
		p.pool.Submit(ev)
		select { // the plugin's loop flushes it (Live)
		case p.kick <- struct{}{}:
		default:
		}
	case p.holding && len(p.held) < maxHeld:
		p.held = append(p.held, ev)
	case p.holding:
		p.log.Error("reload: too many documents emitted while the pools were swapped; dropped one", "kind", ev.Kind.String(), "event", ev.ID.String())
	}
}

// maxHeld bounds the documents kept while a reload swaps pools.
const maxHeld = 4096

// alert logs a sink's coalesced loss report (at most one per sink per
// second, see sinks.Alerts) and emits it as a KindAlert document, which
// the output stage keeps out of the sink it is about.
func (p *Pipeline) alert(rep sinks.AlertReport) {
	p.logAlert(rep)
	now := time.Now()
	p.emitDocument(&audit.Event{
		Kind: audit.KindAlert,
		ID:   audit.EventID{Sec: now.Unix(), Msec: uint16(now.Nanosecond() / 1e6)},
		Enrichment: audit.Enrichment{
			Severity: 3,
			Alert:    &audit.Alert{Sink: rep.Sink, Reason: rep.Reasons(), Count: rep.Count()},
		},
	})
}

func (p *Pipeline) logAlert(rep sinks.AlertReport) {
	p.log.Warn("sink lost documents", "sink", rep.Sink, "count", rep.Count(), "by_reason", rep.Detail(), "total", rep.Total)
}

// handle parses one line and pushes it into reassembly. Bad lines are
// counted and logged with at, where the line was read; they never stop
// the stream.
func (p *Pipeline) handle(line string, at inputPos) {
	rec, err := p.parser.Parse(line)
	if err != nil {
		reason := audit.Reason(err)
		c := p.badLines[reason]
		if c == nil {
			c = p.badLines["other"]
		}
		c.Inc()
		p.errlog.report(reason, err.Error(), line, at)
		return
	}
	p.parsed.Inc()
	p.records++
	p.reasm.Push(rec)
}

// inputError takes a reader's report (see InputError) to the error log:
// counted only when Silent, else logged as flagged or rejected input,
// with file (replay's name of the file; "" in plugin mode) and its line.
func (p *Pipeline) inputError(e *InputError, file string) {
	switch {
	case e.Silent:
		p.errlog.count(e.Reason, e.Flagged)
	case e.Flagged:
		p.errlog.flag(e.Reason, e.Error(), string(e.Raw), inputPos{file: file, line: e.Line})
	default:
		p.errlog.report(e.Reason, e.Error(), string(e.Raw), inputPos{file: file, line: e.Line})
	}
}

// handleBatch passes a batch of the reader's lines to handle in order,
// each with its position: file (as replay was given it; "" in plugin
// mode) and its line number from the batch.
func (p *Pipeline) handleBatch(b Batch, file string) {
	nums := b.numbers()
	for _, l := range b.Lines {
		p.handle(l, inputPos{file: file, line: nums.number()})
	}
}

// Maintain emits the held and timed-out events that are due (live mode)
// and reports whether it emitted any.
func (p *Pipeline) Maintain(now time.Time) bool {
	n := p.reasm.Maintain(now)
	p.inFlight.Set(int64(p.reasm.Stats().InFlight))
	return n > 0
}

// submit runs on the reading goroutine, which is the only one that closes
// or replaces the pool, so it needs no lock.
func (p *Pipeline) submit(ev *audit.Event) {
	p.pool.Submit(ev)
}

// deliver runs on the pool's emitting goroutine. It is the event's last
// owner: once the sinks have their copies, it releases the event's
// records to the parser (audit.Event.Release).
func (p *Pipeline) deliver(out *output.Stage, ev *audit.Event, doc []byte) {
	p.events.Inc()
	out.Deliver(ev, doc)
	if ev.Kind == audit.KindAudit && !ev.TimedOut {
		p.latency.Observe(time.Since(ev.ID.Time()).Seconds())
	}
	ev.Release()
}

// Idle flushes batched output; the driver calls it when input pauses.
// The flush runs on the pool's emitting goroutine, after the documents
// submitted so far (the output stage belongs to that goroutine).
func (p *Pipeline) Idle() {
	p.pool.Barrier(p.out.Flush)
}

// Reload applies a new config; in-flight reassembly is kept. The new
// sinks and enrichers are built first, beside the running ones; if any
// fails to build, the running pipeline stays untouched and the error says
// why. Otherwise the running pool delivers everything it holds, the new
// pool and output stage take over (sinks whose settings did not change
// keep running, changed ones take over their buffers: see
// output.Stage.Prepare), and the old enrichers and the sinks that are gone
// are stopped (those get ShutdownGrace to deliver; the rest stays in their
// disk buffers). Counters continue across reloads.
//
// The VirusTotal enricher (unless VirusTotal rejected its key) and the
// fleet host (with the verdicts it cached and the hashes it holds
// pending) are kept when they run with the new settings (keptVT,
// keptFleet). Otherwise each is replaced after the swap, since only one
// may hold vt.db or the sightings spool (what the old host did not
// deliver stays in the spool for the new one): if the new one cannot
// start, the settings the old one ran with start again, and if that fails
// too the pipeline runs without it (logged).
//
// The process table is kept, with what it knows, when [enrich.proc] did
// not change, and the Sigma enricher with its rules when [enrich.sigma]
// did not (Reopen has reloaded them); a changed [enrich.sigma] loads with
// the running rules as the previous set, so a broken rule file keeps its
// rules across a SIGHUP as it does across a poll.
//
// The package index is kept, whole, when [enrich.packages] did not change
// (a SIGHUP from logrotate loses none of its hashing). When it did, the
// new index starts beside it and the running one keeps answering until
// the new one is complete (packages.TakeOver).
func (p *Pipeline) Reload(cfg *conf.Config) error {
	out, err := p.out.Prepare(cfg, cfg.Enrich.Workers)
	if err != nil {
		return err
	}
	// Their settings need not be p.cfg's: a reload whose settings could
	// not start runs the previous ones, or none.
	vt := p.enr.keptVT(cfg.Enrich.VirusTotal)
	fl := p.enr.keptFleet(cfg.Enrich.Fleet)
	keepSigma := reflect.DeepEqual(p.cfg.Enrich.Sigma, cfg.Enrich.Sigma)
	pt := unchanged(p.enr.proc, p.cfg.Enrich.Proc, cfg.Enrich.Proc)
	pk := unchanged(p.enr.packages, p.cfg.Enrich.Packages, cfg.Enrich.Packages)
	enr, err := buildEnrichers(&cfg.Enrich, emitterFunc(p.emitDocument), p.log, p.reg, vt, vt == nil, fl, fl == nil, pt, p.enr.sigma, keepSigma, pk)
	if err != nil {
		out.Discard()
		return err
	}
	p.mu.Lock()
	old := p.pool
	p.pool, p.holding = nil, true
	p.mu.Unlock()
	old.Close()
	if vt != nil {
		p.enr.vt, enr.vtKept = nil, false // now enr's
	} else {
		prev := p.enr.vtCfg // closeVT clears it
		p.enr.closeVT()
		enr.openVT(&cfg.Enrich.VirusTotal, &prev, emitterFunc(p.emitDocument), p.log, p.reg)
	}
	if fl == nil {
		prev := p.enr.fleetCfg // closeFleet clears it
		p.enr.closeFleet()
		enr.openFleet(&cfg.Enrich.Fleet, &prev, emitterFunc(p.emitDocument), p.log, p.reg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	out.Start(ctx, p.out)
	cancel()
	oldEnr := p.enr
	if enr.sigmaKept {
		oldEnr.sigma, enr.sigmaKept = nil, false // now enr's
	}
	if enr.fleetKept {
		oldEnr.fleet, enr.fleetKept = nil, false // now enr's
	}
	if enr.packages != nil && oldEnr.packages != nil {
		if !enr.pkgKept {
			enr.packages.TakeOver(oldEnr.packages)
		}
		oldEnr.packages, enr.pkgKept = nil, false // now enr's
	}
	pool := p.newPool(cfg, enr, out)
	p.mu.Lock()
	p.out, p.enr, p.cfg = out, enr, cfg
	for _, ev := range p.held {
		pool.Submit(ev)
	}
	p.pool, p.held, p.holding = pool, nil, false
	p.mu.Unlock()
	oldEnr.close()
	return nil
}

// Reopen reopens file sinks and the parse-error log and reloads hash
// lists (SIGHUP, before the config is re-read). A parse-error log that
// cannot be reopened is logged and kept open where it was.
func (p *Pipeline) Reopen() {
	p.out.Reopen()
	if err := p.errlog.reopen(); err != nil {
		p.log.Warn("SIGHUP: parse-error log not reopened; still writing the old file", "err", err)
	}
	p.enr.reload(p.log)
}

// Close flushes reassembly, drains the pool and stops the sinks within ctx.
//
// Order: the events still open are flushed into the pool, the pool drains
// (every enricher, VirusTotal included, sees them: their hashes are cached
// or queued in its state), then the sinks stop and the enrichers close.
//
// If ctx ends while the pool still waits on a sink whose full buffer
// blocks (when_full = "block"), the buffered sinks are closed first so
// that shutdown finishes; their undelivered documents stay on disk.
func (p *Pipeline) Close(ctx context.Context) {
	p.reasm.Flush()
	drained := make(chan struct{})
	go func() {
		p.closePool()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		p.out.Abort()
		<-drained
	}
	p.out.Stop(ctx)
	for _, rep := range p.alerts.Close() { // too late for documents
		p.logAlert(rep)
	}
	p.enr.close()
	p.errlog.close()
}

// closePool detaches the pool (so enrichers' documents are no longer
// taken) and waits until it delivered every submitted event.
func (p *Pipeline) closePool() {
	p.mu.Lock()
	pool := p.pool
	p.pool = nil
	p.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
}

// SinkStats returns the delivery figures of the buffered sinks.
func (p *Pipeline) SinkStats() []sinks.RunnerStats {
	p.mu.Lock()
	out := p.out
	p.mu.Unlock()
	if out == nil {
		return nil
	}
	return out.Stats()
}

// Stats returns the reassembler counters.
func (p *Pipeline) Stats() audit.ReassemblerStats { return p.reasm.Stats() }

// Live runs plugin mode: it reads auditd's stream from in until EOF or a
// stop signal, with SIGHUP reloading cfgPath and SIGUSR1 dumping state.
func Live(cfg *conf.Config, cfgPath string, log *slog.Logger, in io.Reader) error {
	sigs := make(chan os.Signal, 4)
	// auditd starts plugins with signals ignored: register them explicitly.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGPIPE)
	if cfg.MaxProcs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(cfg.MaxProcs)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(liveGCPercent)
	}

	if err := makeOutputDirs(cfg, log); err != nil {
		return err
	}
	// What may wait for a previous plugin still shutting down (the status
	// address, the disk buffers' locks in NewPipeline: startWait) comes
	// before the reader starts, so that the pipe and auditd's queue hold
	// the events meanwhile and the plugin's own queue drops none.
	if cfg.Status.Listen != "" {
		ln, err := openStatus(cfg.Status.Listen, log)
		if err != nil {
			return err
		}
		defer ln.close()
	}
	p, err := NewPipeline(cfg, log, metrics.Default, false)
	if err != nil {
		return err
	}
	stats := NewInputStats(metrics.Default)
	rd, err := NewReader(NewCoalescingReader(newReadyReader(in, cfg.Input.Coalesce), cfg.Input.Coalesce), cfg.Input.Format, cfg.Input.MaxLineBytes, stats, func(e *InputError) {
		p.inputError(e, "")
	})
	if err != nil {
		abandon(p)
		return err
	}
	lines := make(chan Batch, cfg.Input.QueueBatches)
	readErr := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() { readErr <- rd.Run(lines); close(lines); close(readerDone) }()
	finished := make(chan struct{})
	defer close(finished)
	go shutdownWatchdog(p, readerDone, finished, log)

	pidFile := filepath.Join(cfg.StateDir, PidFileName)
	_ = os.MkdirAll(cfg.StateDir, 0o750) // DropPrivileges comes later, and makes none for root
	own := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := writePidFile(pidFile, own); err == nil {
		defer removeOwnPidFile(pidFile, own)
	} else {
		log.Warn("cannot write pid file; `audisp-enrich stats` will need [status] listen", "err", err)
	}
	if err := DropPrivileges(cfg.User, cfg.StateDir, log); err != nil {
		abandon(p)
		return err
	}
	status := newStatus(p, stats, cfg, log)
	// The loop wakes only when there is work: a batch of input, a signal,
	// a document an enricher or a sink emitted on its own (p.kick), the
	// status interval, and the one timer below. While input flows, the
	// reader's batches drive everything (each batch runs the due
	// maintenance and flush), and the timer, pushed back by every batch,
	// never fires; it fires FlushInterval after the last batch or kick to
	// flush what the last batches left and to emit held and timed-out
	// events, and keeps firing every FlushInterval only while events are
	// still being reassembled. An idle plugin has no timer running but the
	// status interval's. (Every wake-up from idle costs the process a
	// scheduler round trip and wakes Go's monitor thread, which on this
	// project's VM cost more CPU than the events: docs/performance.md,
	// "#20 live".)
	var statusC <-chan time.Time
	if cfg.Status.Interval > 0 {
		st := time.NewTicker(cfg.Status.Interval)
		defer st.Stop()
		statusC = st.C
	}
	wake := time.NewTimer(FlushInterval)
	defer wake.Stop()
	// Local sinks are flushed at most every FlushInterval while events
	// come in (one write per batch of events instead of one per event),
	// right after a batch when one is due: the process is awake then.
	dirty, flushed, maintained := false, time.Now(), time.Now()
	flushIfDue := func(now time.Time) {
		if dirty && now.Sub(flushed) >= FlushInterval {
			p.Idle()
			dirty, flushed = false, now
		}
	}
	maintain := func(now time.Time) {
		// Events held for more of their records (audit.DefaultHold) and
		// timed-out ones are emitted here, and flushed at once.
		if p.Maintain(now) {
			dirty, flushed = true, time.Time{}
		}
		maintained = now
	}
	log.Info("audisp-enrich started", "input", cfg.Input.Format, "sinks", len(cfg.Sinks), "config", cfg.File)
	for {
		select {
		case batch, ok := <-lines:
			if !ok {
				err := <-readErr
				var mismatch *FormatMismatchError
				if errors.As(err, &mismatch) {
					// Fatal: auditd logs the exit and restarts the
					// plugin up to max_restarts, each start saying why.
					return errors.Join(err, shutdown(p, status, log, time.Now().Add(ShutdownGrace)))
				}
				log.Info("input closed, shutting down", "err", err)
				return shutdown(p, status, log, time.Now().Add(ShutdownGrace))
			}
			now := time.Now()
			takeBatch(p, stats, batch, now)
			dirty = true
			if now.Sub(maintained) >= FlushInterval {
				maintain(now)
			}
			flushIfDue(now)
			wake.Reset(FlushInterval)
		case <-p.kick:
			dirty = true
			wake.Reset(FlushInterval)
		case now := <-wake.C:
			maintain(now)
			flushIfDue(now)
			if dirty || p.reasm.Stats().InFlight > 0 {
				wake.Reset(FlushInterval)
			}
		case now := <-statusC:
			status.tick(now)
		case s := <-sigs:
			switch s {
			case syscall.SIGTERM, syscall.SIGINT:
				log.Info("signal received, shutting down", "signal", s.String())
				return stopOnSignal(p, lines, status, log)
			case syscall.SIGHUP:
				p.Reopen()
				if cfgPath == "" {
					log.Info("SIGHUP: reopened files and lists (built-in config, nothing to reload)")
					continue
				}
				ncfg, err := loadForReload(cfgPath)
				if err != nil {
					log.Error("SIGHUP: config not reloaded; keeping the running one", "err", err)
					continue
				}
				ncfg.KeepStateDir(cfg.StateDir)
				if err := p.Reload(ncfg); err != nil {
					log.Error("SIGHUP: reload failed; keeping the running config", "err", err)
					continue
				}
				// cfg stays the config the plugin started with: the
				// settings outside [enrich] and [[sink]] are its.
				if keys := restartKeys(cfg, ncfg); keys != "" {
					log.Warn("SIGHUP: changed settings that apply only at the next start", "keys", keys)
				}
				log.Info("SIGHUP: config reloaded ([enrich] and [[sink]] applied)", "config", cfgPath)
			case syscall.SIGUSR1:
				status.dump()
			}
		}
	}
}

// shutdownWatchdog makes shutdown finish even when the main loop is stuck
// handing events to a sink whose full buffer blocks (when_full = "block"):
// once stdin is closed or SIGTERM/SIGINT arrived, it waits ShutdownGrace
// for Live to finish, then closes the buffered sinks, which unblocks the
// pipeline (what they could not take is counted as dropped, reason
// "shutdown"). auditd waits for a stopping plugin without a timeout, so this
// must never hang.
func shutdownWatchdog(p *Pipeline, readerDone, finished <-chan struct{}, log *slog.Logger) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(term)
	select {
	case <-term:
	case <-readerDone:
	case <-finished:
		return
	}
	select {
	case <-finished:
		return
	case <-time.After(ShutdownGrace):
	}
	log.Warn("shutdown blocked by a full sink buffer (when_full = block); closing the buffered sinks")
	p.abortBuffered()
}

// abortBuffered closes the buffered sinks of the current output.
func (p *Pipeline) abortBuffered() {
	p.mu.Lock()
	out := p.out
	p.mu.Unlock()
	if out != nil {
		out.Abort()
	}
}

// drainRead handles the batches the reader had already queued or still
// reads when a stop signal arrived (auditd stops its plugins with SIGTERM
// right after it wrote the last events): it stops at EOF, after drainIdle
// with no new batch, or at deadline. What is left (the pipeline is held up
// by a blocking sink, or input never paused) is counted by shutdown as
// unprocessed.
func drainRead(p *Pipeline, lines <-chan Batch, stats *InputStats, deadline time.Time) {
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	for time.Now().Before(deadline) {
		select {
		case batch, ok := <-lines:
			if !ok {
				return
			}
			takeBatch(p, stats, batch, time.Now())
			idle.Reset(drainIdle)
		case <-idle.C:
			return
		}
	}
}

// drainIdle is how long drainRead waits for more input after a stop signal.
const drainIdle = 50 * time.Millisecond

// takeBatch takes one batch off the input queue into the pipeline. now
// is the wall clock when the batch was taken: its records are stamped with
// it (one clock read per batch; the reassembler's clock is otherwise set
// only by maintenance, which stops while the plugin is idle).
func takeBatch(p *Pipeline, stats *InputStats, batch Batch, now time.Time) {
	stats.QueueLen.Add(-int64(len(batch.Lines)))
	p.reasm.SetNow(now)
	p.handleBatch(batch, "")
}

// stopOnSignal stops the plugin after SIGTERM or SIGINT: it takes in what
// the reader still has (drainRead, for up to half of ShutdownGrace), then
// shuts down by the same deadline, ShutdownGrace after the signal, so the
// drain and the shutdown together stay within it.
func stopOnSignal(p *Pipeline, lines <-chan Batch, st *status, log *slog.Logger) error {
	deadline := time.Now().Add(ShutdownGrace)
	drainRead(p, lines, st.in, deadline.Add(-ShutdownGrace/2))
	return shutdown(p, st, log, deadline)
}

// shutdown closes the pipeline by deadline (see Pipeline.Close) and logs
// the final status.
func shutdown(p *Pipeline, st *status, log *slog.Logger, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	p.Close(ctx)
	// Records the main loop never took (shutdown by signal while the
	// pipeline was held up) are lost: count them under their own name.
	if n := st.in.QueueLen.Value(); n > 0 {
		st.in.Unprocessed.Add(uint64(n))
		log.Error("records still queued at shutdown were not processed", "count", n, "reason", "shutdown")
	}
	st.report("final")
	return nil
}

// startWait is how long plugin mode waits at start for its status address
// while another process holds it, trying every startRetry: auditd may
// start the plugin while the previous one still shuts down (for up to
// ShutdownGrace) with the address open. The disk buffers wait for their
// locks as long (buffer.Open).
const (
	startWait  = 3 * time.Second
	startRetry = 200 * time.Millisecond
)

// statusListener is plugin mode's [status] listener (serveMetrics: a
// unix socket's file is removed at close only while it is still its own).
type statusListener struct{ ln net.Listener }

// openStatus opens the [status] listener. While its address is in use it
// tries again every startRetry for up to startWait (logged once). If the
// address is still in use then, it logs an error and returns nil: the
// plugin runs without the listener, since delivering events matters more
// than serving their figures (as with the pid file). Any other failure is
// returned: a start-up error.
func openStatus(listen string, log *slog.Logger) (*statusListener, error) {
	deadline := time.Now().Add(startWait)
	for try := 0; ; try++ {
		ln, err := serveMetrics(listen, log)
		switch {
		case err == nil:
			return &statusListener{ln: ln}, nil
		case !errors.Is(err, syscall.EADDRINUSE):
			return nil, err
		case !time.Now().Before(deadline):
			log.Error("status listener not opened: its address is still in use; running without it", "listen", listen, "waited", startWait, "err", err)
			return nil, nil
		case try == 0:
			log.Info("status address in use (a previous plugin still shutting down?); waiting for it", "listen", listen, "wait", startWait)
		}
		time.Sleep(startRetry)
	}
}

// close closes the listener. Safe on nil (no listener).
func (s *statusListener) close() {
	if s != nil {
		s.ln.Close()
	}
}

// makeOutputDirs makes the missing directories of the files plugin mode
// writes outside its state directory (DropPrivileges makes that one and
// gives it to the service user): those of the file sinks and of the
// parse-error log. It runs before anything opens them, as root, since a
// file sink opens its file at its first write, after the privilege drop,
// and the service user may not create directories where they go
// (/var/log). A directory it makes (with every missing parent, mode 0750)
// goes to the service user, so that the sink can create, rotate and reopen
// its file there; one that already exists is left as it is: it is the
// administrator's. A directory that cannot be made is logged and left to
// its user: a file sink reports its failure when it writes, and the
// parse-error log fails the start (newErrorLog). Its error is the service
// user's lookup (which DropPrivileges would fail on too).
func makeOutputDirs(cfg *conf.Config, log *slog.Logger) error {
	uid, gid, err := serviceIDs(cfg.User)
	if err != nil {
		return err
	}
	var files []string
	for i := range cfg.Sinks {
		if sc := &cfg.Sinks[i]; sc.Type == "file" && sc.File != nil {
			files = append(files, sc.File.Path)
		}
	}
	if cfg.Log.ParseErrors != "" {
		files = append(files, cfg.Log.ParseErrors)
	}
	for _, f := range files {
		if err := makeDir(filepath.Dir(f), uid, gid); err != nil {
			log.Warn("cannot make the directory of an output file", "file", f, "err", err)
		}
	}
	return nil
}

// makeDir makes dir and its missing parents at mode 0750 and gives each
// one it made to uid:gid (none when uid is -1). Directories that exist
// (also one made by another process meanwhile) are left as they are.
// They are given away deepest first: while root makes and chowns one by
// its path, every directory above it that root made is still root's, so
// the service user cannot swap one of them for a link meanwhile.
func makeDir(dir string, uid, gid int) error {
	made, err := mkdirs(dir)
	for i := len(made) - 1; i >= 0 && uid >= 0; i-- {
		if cerr := os.Lchown(made[i], uid, gid); err == nil {
			err = cerr
		}
	}
	return err
}

// mkdirs makes dir and its missing parents at mode 0750 and returns the
// ones it made, topmost first.
func mkdirs(dir string) ([]string, error) {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	made, err := mkdirs(filepath.Dir(dir))
	if err != nil {
		return made, err
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return made, nil
		}
		return made, err
	}
	return append(made, dir), nil
}

// abandon closes p when plugin mode stops before its main loop ran (a
// fatal start-up error), so that its background work (sinks delivering a
// disk buffer's backlog, the package index saving its file) stops cleanly
// before the process exits; it takes ShutdownGrace at most, as shutdown.
func abandon(p *Pipeline) {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	p.Close(ctx)
}

// writePidFile writes the pid file own. Root writes it into the service
// user's state directory (see package safeopen).
func writePidFile(path string, own []byte) error {
	f, err := safeopen.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(own)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeOwnPidFile removes the pid file at exit only while it still names
// this process: when auditd restarts the plugin (an upgrade, a reload), the
// new process may have written its pid before the old one finished its
// shutdown, and the old one must not remove the new one's file.
func removeOwnPidFile(path string, own []byte) {
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, own) {
		_ = os.Remove(path)
	}
}

// loadForReload reads the config file for a SIGHUP reload. An empty file
// (blank lines at most) is refused instead of being taken for the
// defaults, whose one sink is stdout: a file seen empty is most likely
// being rewritten in place (between its truncation and its write), and
// reloading it would stop every configured sink and drop its metrics.
func loadForReload(path string) (*conf.Config, error) {
	data, err := conf.Read(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: the file is empty (being written? replace it by rename); an empty config would leave only the stdout sink", path)
	}
	return conf.Parse(path, data)
}
