// Package plugin is the audisp-enrich program: it wires the stdin reader,
// the parser and reassembler, the enrichment pool and the sinks together,
// and handles signals, reloads and status reports.
package plugin

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// FlushInterval is how often, at most, plugin mode flushes the local
// sinks (stdout, file) while events come in. A document waits in a local
// sink's batch for less than twice this (the last batch before a pause is
// flushed on the second tick after the previous flush at the latest).
const FlushInterval = 50 * time.Millisecond

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

	mu   sync.Mutex // guards pool, enr and out across reloads
	pool *enrich.Pool
	enr  *enrichers
	out  *output

	parsed   *metrics.Counter
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
		cfg: cfg, log: log, reg: reg, errlog: errlog,
		parsed:   reg.Counter("audisp_enrich_records_parsed_total", "", "Records parsed."),
		events:   reg.Counter("audisp_enrich_events_total", "", "Events emitted (audit, verdict and alert documents)."),
		inFlight: reg.Gauge("audisp_enrich_events_in_flight", "", "Events being reassembled."),
		latency:  reg.Histogram("audisp_enrich_event_latency_seconds", "", "Time from the event's last record to its hand-off to the sinks.", 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1, 2.5, 5),
		badLines: map[string]*metrics.Counter{},
	}
	for _, r := range []string{"no_type", "no_msg", "bad_timestamp", "truncated", "other"} {
		p.badLines[r] = reg.Counter("audisp_enrich_parse_errors_total", `reason="`+r+`"`, "Lines that are not audit records, by reason.")
	}
	p.reasm = audit.NewReassembler(audit.ReassemblerConfig{
		Timeout: cfg.Reassembly.EOETimeout, MaxInFlight: cfg.Reassembly.MaxInFlight, StreamTime: streamTime,
	}, p.submit)
	reg.Func("audisp_enrich_reassembler_evicted_total", "", "Events closed early because too many were in flight.", func() float64 { return float64(p.reasm.Stats().Evicted) })
	reg.Func("audisp_enrich_reassembler_timed_out_total", "", "Events closed by the end-of-event timeout.", func() float64 { return float64(p.reasm.Stats().TimedOut) })
	reg.Func("audisp_enrich_lost_hint_total", "", "Serials never seen (gaps); a hint, the kernel lost counter is authoritative.", func() float64 { return float64(p.reasm.LostHint()) })
	if err := p.build(cfg); err != nil {
		errlog.close()
		return nil, err
	}
	return p, nil
}

// build creates the enrichers, the sinks and the pool for cfg.
func (p *Pipeline) build(cfg *conf.Config) error {
	out, err := buildOutput(cfg, p.reg, p.log, p.alert)
	if err != nil {
		return err
	}
	enr, err := buildEnrichers(&cfg.Enrich, emitterFunc(p.emitDocument), p.log)
	if err != nil {
		out.stop(context.Background())
		return err
	}
	encoders := make([]audit.JSONEncoder, cfg.Enrich.Workers)
	var encode enrich.Encoder
	if out.wantsJSON() {
		encode = func(w int, ev *audit.Event, dst []byte) []byte {
			if ev.Kind == flushKind {
				return dst
			}
			return encoders[w].Append(dst, ev)
		}
	}
	pool := enrich.NewPool(enr.chain, cfg.Enrich.Workers, cfg.Enrich.Queue, cfg.Enrich.Timeout, p.reg, encode, p.deliver)
	p.mu.Lock()
	p.out, p.enr, p.pool = out, enr, pool
	p.mu.Unlock()
	return nil
}

type emitterFunc func(*audit.Event)

func (f emitterFunc) Emit(ev *audit.Event) { f(ev) }

// emitDocument takes verdict and alert documents from enrichers; they join
// the ordered stream like events.
//
// The lock is held across Submit so that a pool is never closed under a
// submitter; Submit only waits for the pool, which drains on its own.
// Documents that arrive while no pool runs (shutdown) are dropped: the
// VirusTotal queue keeps their hashes for the next start.
func (p *Pipeline) emitDocument(ev *audit.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool != nil {
		p.pool.Submit(ev)
	}
}

// alert emits a KindAlert document when a sink's buffer dropped documents,
// so the loss reaches the SIEM as well as the log. Runners call it from
// their own goroutine, at most once per second per reason.
func (p *Pipeline) alert(sink string, n int, reason string) {
	now := time.Now()
	p.emitDocument(&audit.Event{
		Kind: audit.KindAlert,
		ID:   audit.EventID{Sec: now.Unix(), Msec: uint16(now.Nanosecond() / 1e6)},
		Enrichment: audit.Enrichment{
			Severity: 3,
			Alert:    &audit.Alert{Sink: sink, Reason: reason, Count: uint64(n)},
		},
	})
}

// Handle parses one line and pushes it into reassembly. Bad lines are
// counted and logged; they never stop the stream.
func (p *Pipeline) Handle(line string) {
	rec, err := p.parser.Parse(line)
	if err != nil {
		reason := audit.Reason(err)
		c := p.badLines[reason]
		if c == nil {
			c = p.badLines["other"]
		}
		c.Inc()
		p.errlog.report(reason, err.Error(), line)
		return
	}
	p.parsed.Inc()
	p.reasm.Push(rec)
}

// Maintain closes timed-out events (live mode) and flushes idle batches.
func (p *Pipeline) Maintain(now time.Time) {
	p.reasm.Maintain(now)
	p.inFlight.Set(int64(p.reasm.Stats().InFlight))
}

// submit runs on the reading goroutine, which is the only one that closes
// or replaces the pool, so it needs no lock.
func (p *Pipeline) submit(ev *audit.Event) {
	p.pool.Submit(ev)
}

// deliver runs on the pool's emitting goroutine.
func (p *Pipeline) deliver(ev *audit.Event, jsonDoc []byte) {
	if ev.Kind == flushKind {
		p.out.flush()
		return
	}
	p.events.Inc()
	p.out.publish(ev, jsonDoc)
	if ev.Kind == audit.KindAudit && !ev.TimedOut {
		p.latency.Observe(time.Since(ev.ID.Time()).Seconds())
	}
}

// Idle flushes batched output; the driver calls it when input pauses.
func (p *Pipeline) Idle() {
	// The output belongs to the emitting goroutine; an empty event would
	// be wasteful, so flush through a no-op document.
	p.pool.Submit(&audit.Event{Kind: flushKind})
}

// flushKind marks the internal flush request that Idle submits.
const flushKind audit.Kind = 255

// Reload applies a new config: in-flight reassembly is kept; the enrichers
// and sinks are rebuilt after the old pool has delivered everything.
//
// The old sinks get ShutdownGrace to deliver what they hold; the rest
// stays in their disk buffers, which the new sinks of the same name reopen
// (a memory buffer's rest is lost and counted).
func (p *Pipeline) Reload(cfg *conf.Config) error {
	p.closePool()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	p.out.stop(ctx)
	cancel()
	p.enr.close()
	if err := p.build(cfg); err != nil {
		// Keep running on the previous config.
		if err2 := p.build(p.cfg); err2 != nil {
			return fmt.Errorf("reload failed (%v) and the previous config could not be rebuilt: %w", err, err2)
		}
		return err
	}
	p.cfg = cfg
	return nil
}

// Reopen reopens file sinks and reloads hash lists (SIGHUP without a
// config change).
func (p *Pipeline) Reopen() {
	p.out.reopen()
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
		p.out.abortBuffered()
		<-drained
	}
	p.out.stop(ctx)
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
	defer p.mu.Unlock()
	if p.out == nil {
		return nil
	}
	return p.out.sinkStats()
}

// Stats returns the reassembler counters.
func (p *Pipeline) Stats() audit.ReassemblerStats { return p.reasm.Stats() }

// Replay runs audit.log files (plain or gzip; "-" is stdin) through the
// pipeline with record-time semantics, then flushes.
func Replay(ctx context.Context, cfg *conf.Config, log *slog.Logger, files []string, stdin io.Reader) error {
	p, err := NewPipeline(cfg, log, metrics.Default, true)
	if err != nil {
		return err
	}
	// Replay waits for the sinks to deliver (until interrupted, or until a
	// sink stalls; see runnerSink.stop).
	defer p.Close(ctx)
	if err := p.enr.waitPackages(ctx, log); err != nil {
		return err
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if err := replayFile(ctx, p, f, stdin, cfg.Input.MaxLineBytes); err != nil {
			return err
		}
	}
	return nil
}

func replayFile(ctx context.Context, p *Pipeline, name string, stdin io.Reader, maxLine int) error {
	r, closeFn, err := openLog(name, stdin)
	if err != nil {
		return err
	}
	defer closeFn()
	rd, err := NewReader(r, FramingString, maxLine, NewInputStats(metrics.Default), func(e *InputError) {
		p.errlog.report(e.Reason, fmt.Sprintf("%s: %s", name, e.Error()), string(e.Raw))
	})
	if err != nil {
		return err
	}
	ch := make(chan []string, 4)
	errc := make(chan error, 1)
	go func() { errc <- rd.RunBlocking(ch); close(ch) }()
	for batch := range ch {
		for _, l := range batch {
			p.Handle(l)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

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

	p, err := NewPipeline(cfg, log, metrics.Default, false)
	if err != nil {
		return err
	}
	stats := NewInputStats(metrics.Default)
	rd, err := NewReader(NewCoalescingReader(newReadyReader(in, cfg.Input.Coalesce), cfg.Input.Coalesce), cfg.Input.Format, cfg.Input.MaxLineBytes, stats, func(e *InputError) {
		p.errlog.report(e.Reason, e.Error(), string(e.Raw))
	})
	if err != nil {
		return err
	}
	lines := make(chan []string, cfg.Input.QueueBatches)
	readErr := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() { readErr <- rd.Run(lines); close(lines); close(readerDone) }()
	finished := make(chan struct{})
	defer close(finished)
	go shutdownWatchdog(p, readerDone, finished, log)

	if cfg.Status.Listen != "" {
		ln, err := serveMetrics(cfg.Status.Listen, log)
		if err != nil {
			return err
		}
		defer ln.Close()
	}
	pidFile := filepath.Join(cfg.StateDir, PidFileName)
	_ = os.MkdirAll(cfg.StateDir, 0o750) // DropPrivileges comes later, and makes none for root
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err == nil {
		defer os.Remove(pidFile)
	} else {
		log.Warn("cannot write pid file; `audisp-enrich stats` will need [status] listen", "err", err)
	}
	if err := DropPrivileges(cfg.User, cfg.StateDir, log); err != nil {
		p.Close(context.Background())
		return err
	}
	status := newStatus(p, stats, cfg, log)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	// Local sinks are flushed at most every FlushInterval while events
	// come in (one write per batch of events instead of one per event),
	// right after a batch when one is due: the process is awake then, and
	// a write from an idle process wakes Go's monitor thread into 20 µs
	// polling. The ticker flushes what the last batches left.
	flush := time.NewTicker(FlushInterval)
	defer flush.Stop()
	dirty, flushed := false, time.Now()
	flushIfDue := func(now time.Time) {
		if dirty && now.Sub(flushed) >= FlushInterval {
			p.Idle()
			dirty, flushed = false, now
		}
	}
	log.Info("audisp-enrich started", "input", cfg.Input.Format, "sinks", len(cfg.Sinks), "config", cfg.File)
	for {
		select {
		case batch, ok := <-lines:
			if !ok {
				err := <-readErr
				log.Info("input closed, shutting down", "err", err)
				return shutdown(p, status, log)
			}
			stats.QueueLen.Add(-int64(len(batch)))
			for _, l := range batch {
				p.Handle(l)
			}
			dirty = true
			flushIfDue(time.Now())
		case now := <-flush.C:
			flushIfDue(now)
		case now := <-tick.C:
			p.Maintain(now)
			p.Idle()
			status.tick(now)
		case s := <-sigs:
			switch s {
			case syscall.SIGTERM, syscall.SIGINT:
				log.Info("signal received, shutting down", "signal", s.String())
				return shutdown(p, status, log)
			case syscall.SIGHUP:
				p.Reopen()
				if cfgPath == "" {
					log.Info("SIGHUP: reopened files and lists (built-in config, nothing to reload)")
					continue
				}
				ncfg, err := conf.Load(cfgPath)
				if err != nil {
					log.Error("SIGHUP: config not reloaded; keeping the running one", "err", err)
					continue
				}
				if err := p.Reload(ncfg); err != nil {
					log.Error("SIGHUP: reload failed; keeping the running config", "err", err)
					continue
				}
				cfg = ncfg
				log.Info("SIGHUP: config reloaded", "config", cfgPath)
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
// "closed"). auditd waits for a stopping plugin without a timeout, so this
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
		out.abortBuffered()
	}
}

func shutdown(p *Pipeline, st *status, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	p.Close(ctx)
	st.report("final")
	return nil
}

// openLog opens an audit log for replay: "-" is stdin; a gzip file is
// recognised by its magic bytes, whatever its name.
func openLog(name string, stdin io.Reader) (io.Reader, func(), error) {
	var r io.Reader = stdin
	closeFn := func() {}
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		r, closeFn = f, func() { f.Close() }
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr, closeFn, nil
	}
	return br, closeFn, nil
}
