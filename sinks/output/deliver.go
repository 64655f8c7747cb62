package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
	"github.com/audisp-enrich/audisp-enrich/sinks/file"
	"github.com/audisp-enrich/audisp-enrich/sinks/gelf"
	"github.com/audisp-enrich/audisp-enrich/sinks/kafka"
	"github.com/audisp-enrich/audisp-enrich/sinks/remote"
	"github.com/audisp-enrich/audisp-enrich/sinks/syslog"
)

// deliverer takes encoded messages for one sink. Every method except
// stop runs on the stage's single publishing goroutine.
type deliverer interface {
	// publish queues one message; it must not block on the destination
	// (except a full buffer whose policy is "block"). m.Value belongs to
	// the caller.
	publish(m sinks.Message)
	// flush pushes out what is batched (called when the input is idle).
	flush()
	// stop delivers what it can before ctx is done and closes the sink.
	stop(ctx context.Context)
	// reopen is called on SIGHUP.
	reopen()
}

// readsLists reports whether a sink reads the record types, rule keys and
// techniques of an event's metadata: its filter selects on them, or it
// writes them (kafka: headers and a topic template's {type}; syslog: the
// structured data). GELF and remote read only node and severity.
func readsLists(sc *conf.SinkConfig) bool {
	f := &sc.Filter
	return sc.Type == "kafka" || sc.Type == "syslog" || len(f.Types) > 0 || len(f.Keys) > 0 || len(f.Techniques) > 0
}

// newSink builds the Sink of a network sink (kafka, syslog, gelf, remote). It
// reads what the sink needs (TLS files, passwords) but connects to nothing.
// The sinks' errors name the sink.
func newSink(sc *conf.SinkConfig, reg *metrics.Registry, log *slog.Logger) (sinks.Sink, error) {
	var s sinks.Sink
	var err error
	switch sc.Type {
	case "kafka":
		s, err = kafka.New(sc.Name, *sc.Kafka, reg, log)
	case "syslog":
		s, err = syslog.New(sc.Name, *sc.Syslog, reg)
	case "remote":
		s, err = remote.New(sc.Name, *sc.Remote, reg)
	case "gelf":
		s, err = gelf.New(sc.Name, *sc.Gelf, reg)
	default:
		err = fmt.Errorf("sink %s: unknown sink type %q", sc.Name, sc.Type)
	}
	return s, err
}

// newLocalSink builds the Sink of a stdout or file sink. msgpack
// documents are binary: each is followed by a newline whatever its last
// byte.
func newLocalSink(sc *conf.SinkConfig) (sinks.Sink, error) {
	var f *file.Sink
	if sc.Type == "stdout" {
		f = file.NewStream(sc.Name, os.Stdout)
	} else {
		var err error
		if f, err = file.NewFile(sc.Name, sc.File.Path, sc.File.MaxBytes, sc.File.Keep, os.FileMode(sc.File.Mode)); err != nil {
			return nil, err
		}
	}
	if sc.Encoding == "msgpack" {
		f.SetBinary()
	}
	return f, nil
}

// runnerSink delivers through a sinks.Runner: its own buffer (disk by
// default) and a goroutine that writes, retries and reconnects, so a slow
// or dead destination never holds up the pipeline.
type runnerSink struct {
	r   *sinks.Runner
	log *slog.Logger
	reg *metrics.Registry
	// unsent counts documents published after the runner stopped (still
	// queued in the pipeline at shutdown, e.g. behind a full "block"
	// buffer) since stop last logged them.
	unsent atomic.Uint64
	// next, when set, is the sink that replaces r's at Start (a reload
	// that changed this sink's settings; the buffer is handed over).
	next sinks.Sink
	cfg  sinks.RunnerConfig
}

// openRunner builds the runner of a network sink and opens its buffer; it
// is started by Stage.Start.
func openRunner(stateDir string, sc *conf.SinkConfig, s sinks.Sink, opts Options) (*runnerSink, error) {
	bc := sc.Buffer
	if bc.Dir == "" {
		bc.Dir = buffer.SpoolDir(stateDir, sc.Name)
	}
	r, err := sinks.NewRunner(s, sc.Delivery, buffer.Opener(bc, buffer.Options{Name: sc.Name, Logger: opts.Logger, Metrics: opts.Metrics}), sinks.RunnerOptions{Metrics: opts.Metrics, Logger: opts.Logger, OnDrop: opts.OnDrop})
	if err != nil {
		return nil, err
	}
	return newRunnerSink(r, opts), nil
}

// newRunnerSink is the one place a runnerSink is made: every one, the
// opened and the handed-over alike, counts and logs with opts.
func newRunnerSink(r *sinks.Runner, opts Options) *runnerSink {
	return &runnerSink{r: r, log: opts.Logger, reg: opts.Metrics}
}

func (s *runnerSink) publish(m sinks.Message) {
	m.Value = append([]byte(nil), m.Value...)
	// Drops are counted, logged and reported by the buffer, except those
	// after the runner stopped: its figures and alerts are gone by then.
	if err := s.r.Append(m); errors.Is(err, buffer.ErrClosed) {
		s.unsent.Add(1)
		s.reg.Counter("audisp_enrich_sink_dropped_total", metrics.Label("sink", s.r.Name())+`,reason="shutdown"`, "Messages lost, by reason.").Inc()
	}
}

func (s *runnerSink) flush() {}

func (s *runnerSink) reopen() {}

// stopSlack is the part of a shutdown deadline kept for closing the sink.
const stopSlack = 200 * time.Millisecond

// stopStall is how long a shutdown without a deadline (replay) waits for a
// sink that acknowledges nothing before it gives up; what is left stays in
// a disk buffer for the next start.
const stopStall = 10 * time.Second

// stop waits until the sink acknowledged everything queued, or ctx is
// nearly done, or (without a deadline) it made no progress for stopStall;
// then it stops the runner.
func (s *runnerSink) stop(ctx context.Context) {
	deadline, hasDeadline := ctx.Deadline()
	lastAcked, lastProgress := s.r.Stats().Acked, time.Now()
	for ctx.Err() == nil {
		st := s.r.Stats()
		if st.Queued == 0 {
			break
		}
		if hasDeadline && time.Until(deadline) < stopSlack {
			break
		}
		if st.Acked != lastAcked {
			lastAcked, lastProgress = st.Acked, time.Now()
		} else if !hasDeadline && time.Since(lastProgress) > stopStall {
			s.log.Warn("sink makes no progress; leaving the rest in its buffer", "sink", s.r.Name(), "queued", st.Queued)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.r.Stop(ctx); err != nil {
		s.log.Warn("sink stopped with undelivered documents left in its buffer", "sink", s.r.Name(), "err", err)
	}
	if n := s.unsent.Swap(0); n > 0 {
		s.log.Error("documents still queued at shutdown were lost", "sink", s.r.Name(), "count", n, "reason", "shutdown")
	}
}

// localBatch is how many documents a local sink batches before it writes,
// and localBatchBytes how many bytes: whichever comes first. The byte bound
// keeps the batch's arena at one fixed size, so that batching holds no
// more than that in memory (the arena no longer grows by doubling, which
// kept every outgrown array alive until the flush).
const (
	localBatch      = 512
	localBatchBytes = 256 << 10
)

// localAttempts is how often a local sink tries a batch (reconnecting in
// between when the sink asks for it) before the rest is dropped.
const localAttempts = 3

// direct delivers to a local sink (stdout, file) from the publishing
// goroutine, in batches of up to localBatch documents or localBatchBytes
// bytes (a larger document goes alone), flushed at the
// latest when the input pauses. It keeps the Sink contract the way the
// runner does: Connect before the first Write and again after
// ErrNotConnected, delivered messages of a *PartialError acknowledged and
// only the rest retried. Unlike the runner it does not retry forever
// (local writes do not wait on a network, and holding the batch would hold
// up the pipeline): after localAttempts tries what is left is dropped,
// counted (reason write_error) and logged, once per failure: a sink that
// keeps failing (a file it may not create) logs the first flush that drops
// documents as an error and the first one that writes again with the count
// dropped in between, as a network sink logs its reconnection, instead of a
// line per flush.
type direct struct {
	s         sinks.Sink
	batch     []sinks.Message
	arena     []byte // holds the batch's values; localBatchBytes unless a document is larger
	log       *slog.Logger
	acked     *metrics.Counter
	failed    *metrics.Counter
	connected bool
	// failing is set from a flush that dropped documents to the next one
	// that dropped none; lost counts the documents dropped meanwhile.
	failing bool
	lost    uint64
}

func newDirect(s sinks.Sink, reg *metrics.Registry, log *slog.Logger) *direct {
	l := metrics.Label("sink", s.Name())
	return &direct{s: s, log: log,
		acked:  reg.Counter("audisp_enrich_sink_acked_total", l, "Messages the sink acknowledged."),
		failed: reg.Counter("audisp_enrich_sink_dropped_total", l+`,reason="write_error"`, "Messages lost, by reason."),
	}
}

func (d *direct) publish(m sinks.Message) {
	// The value buffer is reused by the encoder: copy it into the arena,
	// flushing first when it would not fit.
	if len(d.arena)+len(m.Value) > cap(d.arena) {
		d.flush()
		if cap(d.arena) < max(localBatchBytes, len(m.Value)) {
			d.arena = make([]byte, 0, max(localBatchBytes, len(m.Value)))
		}
	}
	start := len(d.arena)
	d.arena = append(d.arena, m.Value...)
	m.Value = d.arena[start:len(d.arena):len(d.arena)]
	d.batch = append(d.batch, m)
	if len(d.batch) >= localBatch {
		d.flush()
	}
}

func (d *direct) flush() {
	if len(d.batch) == 0 {
		return
	}
	ctx := context.Background()
	pending := d.batch
	var err error
	for range localAttempts {
		if !d.connected {
			if err = d.s.Connect(ctx); err != nil {
				continue
			}
			d.connected = true
		}
		err = d.s.Write(ctx, pending)
		if err == nil {
			d.acked.Add(uint64(len(pending)))
			pending = nil
			break
		}
		var pe *sinks.PartialError
		if errors.As(err, &pe) {
			var done []sinks.Message
			done, pending = sinks.SplitDelivered(pending, pe.Delivered)
			d.acked.Add(uint64(len(done)))
		}
		if errors.Is(err, sinks.ErrNotConnected) {
			_ = d.s.Close(ctx)
			d.connected = false
		}
		if !d.failing {
			d.log.Warn("sink write failed; retrying", "sink", d.s.Name(), "pending", len(pending), "err", err)
		}
	}
	d.account(len(pending), err)
	clear(d.batch)
	d.batch = d.batch[:0]
	d.arena = d.arena[:0]
	if cap(d.arena) > localBatchBytes {
		d.arena = nil // made for one large document
	}
}

// account counts the dropped documents of a flush, dropped of them for
// err, and logs when the sink starts or stops dropping.
func (d *direct) account(dropped int, err error) {
	switch {
	case dropped > 0:
		d.failed.Add(uint64(dropped))
		d.lost += uint64(dropped)
		if !d.failing {
			d.failing = true
			d.log.Error("sink write failed; documents dropped (until it writes again, logged then)", "sink", d.s.Name(), "count", dropped, "err", err)
		}
	case d.failing:
		d.log.Info("sink writes again", "sink", d.s.Name(), "dropped", d.lost)
		d.failing, d.lost = false, 0
	}
}

func (d *direct) reopen() {
	if r, ok := d.s.(interface{ Reopen() }); ok {
		r.Reopen()
	}
}

func (d *direct) stop(ctx context.Context) {
	d.flush()
	_ = d.s.Close(ctx)
}
