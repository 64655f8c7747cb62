package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Buffer is a per-sink queue of messages with acknowledgements. Package
// sinks/buffer implements it in memory and on disk.
//
// All methods are safe for concurrent use.
type Buffer interface {
	// Append queues msgs, assigning each a Seq (written into msgs). It
	// takes ownership of the Key and Value slices. It does not block
	// unless the buffer is full and its policy is "block". A message that
	// could not be queued is counted and reported as a drop; the error
	// says why. The exception is a buffer that is closed (before the call
	// or while it waited for room): Append then queues nothing more and
	// returns buffer.ErrClosed without counting, and the caller accounts
	// for what it could not queue (the output stage counts it as reason
	// "shutdown"), so that the loss is counted once, where it is logged.
	Append(msgs ...Message) error
	// ReadBatch blocks until at least one message is available or ctx is
	// done, then returns up to max messages holding at most maxBytes bytes
	// (at least one message, whatever its size), oldest first; messages
	// given back by Nack come before unread ones. Returned messages are in
	// flight until acked or nacked and are not returned again meanwhile.
	ReadBatch(ctx context.Context, max, maxBytes int) ([]Message, error)
	// Ack removes delivered messages and returns how many it removed.
	// Acks may come in any order; unknown or already removed seqs are
	// ignored and not counted, among them in-flight messages that
	// drop_oldest evicted (already counted as dropped).
	Ack(seqs ...uint64) int
	// Nack gives in-flight messages back to be read again.
	Nack(seqs ...uint64)
	// Len is the number of messages not yet acknowledged, including those
	// in flight.
	Len() int
	// Bytes is the space the buffer holds: message bytes for memory,
	// spool file bytes for disk.
	Bytes() int64
	// OldestAge is the age of the oldest unacknowledged message, 0 when
	// empty.
	OldestAge() time.Duration
	// Close releases the buffer; later calls fail or do nothing. A disk
	// buffer syncs first and keeps what was not acknowledged for the next
	// open; a memory buffer counts what it held as dropped (shutdown).
	Close() error
}

// RunnerConfig sets batching and retries for one sink. Zero values mean
// the defaults noted on each field.
type RunnerConfig struct {
	// BatchSize is the most messages per Write. Default 500.
	BatchSize int `toml:"batch_size"`
	// BatchBytes is the most message bytes per Write (a single larger
	// message still goes alone). Default 1 MiB.
	BatchBytes int `toml:"batch_bytes"`
	// Linger is how long to wait for a batch to fill before writing what
	// is there. Default 0: write whatever is queued at once.
	Linger time.Duration `toml:"linger"`
	// BackoffMin and BackoffMax bound the exponential, jittered wait
	// between failed attempts (connect or write). Defaults 100ms and 30s.
	BackoffMin time.Duration `toml:"backoff_min"`
	BackoffMax time.Duration `toml:"backoff_max"`
	// WriteTimeout cancels a Write that takes longer; its batch is then
	// retried. Default 30s.
	WriteTimeout time.Duration `toml:"write_timeout"`
}

// DefaultRunnerConfig returns the defaults.
func DefaultRunnerConfig() RunnerConfig {
	return RunnerConfig{
		BatchSize:    500,
		BatchBytes:   1 << 20,
		BackoffMin:   100 * time.Millisecond,
		BackoffMax:   30 * time.Second,
		WriteTimeout: 30 * time.Second,
	}
}

// Validate reports the first invalid option.
func (c *RunnerConfig) Validate() error {
	switch {
	case c.BatchSize < 0:
		return fmt.Errorf("batch_size %d: must not be negative", c.BatchSize)
	case c.BatchBytes < 0:
		return fmt.Errorf("batch_bytes %d: must not be negative", c.BatchBytes)
	case c.Linger < 0 || c.Linger > 10*time.Second:
		return fmt.Errorf("linger %v: must be between 0 and 10s", c.Linger)
	case c.BackoffMin < 0 || c.BackoffMax < 0 || c.WriteTimeout < 0:
		return errors.New("backoff_min, backoff_max and write_timeout must not be negative")
	}
	d := c.withDefaults()
	if d.BackoffMin > d.BackoffMax {
		return fmt.Errorf("backoff_min %v is above backoff_max %v", d.BackoffMin, d.BackoffMax)
	}
	return nil
}

func (c RunnerConfig) withDefaults() RunnerConfig {
	def := DefaultRunnerConfig()
	if c.BatchSize == 0 {
		c.BatchSize = def.BatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = def.BatchBytes
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = def.BackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(def.BackoffMax, c.BackoffMin)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = def.WriteTimeout
	}
	return c
}

// RunnerOptions are the runtime parts of a Runner.
type RunnerOptions struct {
	// Metrics is where the per-sink figures are registered; nil means
	// metrics.Default. Stop keeps them (a runner of the same name built
	// later continues them); the runtime removes them with
	// Registry.UnregisterLabel when a reload removed the sink.
	Metrics *metrics.Registry
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// OnDrop is told about lost messages (already counted and logged at
	// ERROR by the buffer) so that the runtime can emit an alert event.
	// Reports are coalesced per reason and delivered from a goroutine of
	// the runner at most once per second (those pending when Stop ends it,
	// the buffer's shutdown drops among them, before Stop returns), so
	// OnDrop may publish without recursing; the runtime passes them through Alerts, and the alert
	// documents go to every sink except this one. May be nil.
	OnDrop func(sink string, n int, reason string)
}

// RunnerStats is a snapshot of one sink's delivery figures.
type RunnerStats struct {
	Sink      string `json:"sink"`
	Connected bool   `json:"connected"`
	// Queued is the number of messages not yet acknowledged, in flight
	// included.
	Queued   int    `json:"queued"`
	InFlight int    `json:"in_flight"`
	Acked    uint64 `json:"acked"`
	// Retried counts messages handed to Write again after a failure.
	Retried    uint64            `json:"retried"`
	Reconnects uint64            `json:"reconnects"`
	Dropped    map[string]uint64 `json:"dropped"`
	// BufferBytes is the memory or disk the buffer holds.
	BufferBytes int64         `json:"buffer_bytes"`
	OldestAge   time.Duration `json:"oldest_age"`
	LastError   string        `json:"last_error,omitempty"`
}

// Runner owns one Sink and moves messages from the sink's Buffer into it:
// it batches, writes, acks what was delivered, retries the rest with
// backoff and reconnects when the sink says it lost its connection.
// Append never waits for the sink.
//
// One goroutine calls the sink, so the Sink contract (never two calls at
// once) holds. Delivery order is buffer order, except that messages that
// failed are retried before newer ones are written.
//
// The buffer, the per-sink metrics and the drop reports outlive a Runner:
// Handover gives them to a Runner over a new Sink (a reload that changed
// the sink's settings), so that nothing queued is lost and no counter
// starts again from zero. Metrics are registered once per sink name, in
// NewRunner; a Runner of the same name built later (after a restart of the
// pipeline in the same process) gets the same series.
type Runner struct {
	*lane
	sink Sink
	cfg  RunnerConfig

	cancel  context.CancelFunc
	ctx     context.Context
	done    chan struct{}
	start   sync.Once
	stop    sync.Once
	stopErr error
}

// lane is what the Runners of one sink share across Handover: the buffer,
// the metrics and the drop reports.
type lane struct {
	name string
	opts RunnerOptions
	log  *slog.Logger
	buf  Buffer

	labels     string
	acked      *metrics.Counter
	retried    *metrics.Counter
	reconnects *metrics.Counter
	inFlight   *metrics.Gauge
	connected  *metrics.Gauge

	mu        sync.Mutex
	dropped   map[string]*metrics.Counter
	lastErr   string
	pendDrops map[string]int
	dropKick  chan struct{}
	dropDone  chan struct{}
	dropStop  context.CancelFunc
	dropCtx   context.Context
}

// NewRunner builds the runner for sink. open opens its buffer; it receives
// the callback the buffer must report drops to. Call Start to begin
// delivery and Stop to end it.
func NewRunner(sink Sink, cfg RunnerConfig, open func(onDrop func(n int, reason string)) (Buffer, error), opts RunnerOptions) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", sink.Name(), err)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Default
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &lane{
		name:      sink.Name(),
		opts:      opts,
		log:       opts.Logger.With("sink", sink.Name()),
		labels:    `sink="` + escapeLabel(sink.Name()) + `"`,
		dropped:   map[string]*metrics.Counter{},
		pendDrops: map[string]int{},
		dropKick:  make(chan struct{}, 1),
		dropDone:  make(chan struct{}),
	}
	l.dropCtx, l.dropStop = context.WithCancel(context.Background())
	go l.dropLoop()
	buf, err := open(l.onDrop)
	if err != nil {
		l.dropStop()
		<-l.dropDone
		return nil, fmt.Errorf("sink %s: buffer: %w", l.name, err)
	}
	l.buf = buf
	reg := opts.Metrics
	l.acked = reg.Counter("audisp_enrich_sink_acked_total", l.labels, "Messages the sink acknowledged.")
	l.retried = reg.Counter("audisp_enrich_sink_retried_total", l.labels, "Messages written again after a failed write.")
	l.reconnects = reg.Counter("audisp_enrich_sink_reconnects_total", l.labels, "Connections re-established after the sink lost one.")
	l.inFlight = reg.Gauge("audisp_enrich_sink_in_flight", l.labels, "Messages handed to the sink and not yet acknowledged.")
	l.connected = reg.Gauge("audisp_enrich_sink_connected", l.labels, "1 while the sink is connected.")
	reg.Func("audisp_enrich_sink_queued", l.labels, "Messages in the buffer not yet acknowledged, in flight included.", func() float64 { return float64(buf.Len()) })
	reg.Func("audisp_enrich_sink_buffer_bytes", l.labels, "Bytes the sink's buffer holds (memory or spool files).", func() float64 { return float64(buf.Bytes()) })
	reg.Func("audisp_enrich_sink_oldest_age_seconds", l.labels, "Age of the oldest unacknowledged message.", func() float64 { return buf.OldestAge().Seconds() })
	return newRunner(l, sink, cfg), nil
}

func newRunner(l *lane, sink Sink, cfg RunnerConfig) *Runner {
	r := &Runner{lane: l, sink: sink, cfg: cfg.withDefaults(), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// Handover stops r's delivery within ctx (the write in progress is
// cancelled and its messages go back to the buffer; r's sink is closed)
// and returns an unstarted Runner that delivers the same buffer to sink,
// with cfg. sink must have r's name. The buffer stays open, the metrics
// and the drop reports carry on; r must not be used afterwards. A sink
// that does not return from Write or Close before ctx is done is
// abandoned, as by Stop, and its batch is given back when Write returns.
func (r *Runner) Handover(ctx context.Context, sink Sink, cfg RunnerConfig) (*Runner, error) {
	if sink.Name() != r.name {
		return nil, fmt.Errorf("sink %s: handover to a sink named %s", r.name, sink.Name())
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", r.name, err)
	}
	var err error
	r.stop.Do(func() {
		r.stopErr = r.halt(ctx)
		err = r.stopErr
	})
	if err != nil {
		r.log.Warn("sink handed over with a write still in progress", "err", err)
	}
	return newRunner(r.lane, sink, cfg), nil
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// Name is the sink's name.
func (r *Runner) Name() string { return r.name }

// Append queues msgs for the sink (see Buffer.Append).
func (r *Runner) Append(msgs ...Message) error { return r.buf.Append(msgs...) }

// Start begins delivery in a goroutine. Calling it again does nothing.
func (r *Runner) Start() {
	r.start.Do(func() { go r.run() })
}

// Stop ends delivery within ctx: it cancels the write in progress, closes
// the sink and then the buffer, so that a disk buffer keeps whatever was
// not acknowledged. If the sink does not return from Write or Close before
// ctx is done, Stop still closes the buffer and returns an error; the
// stuck call is abandoned. Calling Stop again returns the first result.
// The metrics stay registered (see RunnerOptions.Metrics).
func (r *Runner) Stop(ctx context.Context) error {
	r.stop.Do(func() {
		errs := []error{r.halt(ctx)}
		if err := r.buf.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: buffer: %w", r.name, err))
		}
		r.dropStop()
		<-r.dropDone
		r.stopErr = errors.Join(errs...)
	})
	return r.stopErr
}

// halt ends the delivery loop and closes the sink, within ctx.
func (r *Runner) halt(ctx context.Context) error {
	r.start.Do(func() { close(r.done) }) // never started
	r.cancel()
	var errs []error
	select {
	case <-r.done:
		closed := make(chan error, 1)
		go func() { closed <- r.sink.Close(ctx) }()
		select {
		case err := <-closed:
			if err != nil {
				errs = append(errs, fmt.Errorf("sink %s: close: %w", r.name, err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("sink %s: close did not finish in time", r.name))
		}
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("sink %s: still writing at shutdown; abandoned", r.name))
	}
	r.connected.Set(0)
	return errors.Join(errs...)
}

// Stats returns a snapshot of the sink's figures.
func (r *Runner) Stats() RunnerStats {
	s := RunnerStats{
		Sink:        r.name,
		Connected:   r.connected.Value() == 1,
		Queued:      r.buf.Len(),
		InFlight:    int(r.inFlight.Value()),
		Acked:       r.acked.Value(),
		Retried:     r.retried.Value(),
		Reconnects:  r.reconnects.Value(),
		BufferBytes: r.buf.Bytes(),
		OldestAge:   r.buf.OldestAge(),
		Dropped:     map[string]uint64{},
	}
	r.mu.Lock()
	for reason, c := range r.dropped {
		s.Dropped[reason] = c.Value()
	}
	s.LastError = r.lastErr
	r.mu.Unlock()
	return s
}

// onDrop is the buffer's drop callback: count now, alert later.
func (r *lane) onDrop(n int, reason string) {
	r.mu.Lock()
	c, ok := r.dropped[reason]
	if !ok {
		c = r.opts.Metrics.Counter("audisp_enrich_sink_dropped_total", r.labels+`,reason="`+escapeLabel(reason)+`"`, "Messages lost, by reason.")
		r.dropped[reason] = c
	}
	c.Add(uint64(n))
	r.pendDrops[reason] += n
	r.mu.Unlock()
	select {
	case r.dropKick <- struct{}{}:
	default:
	}
}

// dropLoop hands coalesced drop reports to OnDrop, at most once a second.
// When it ends (Stop) it hands over what is still pending, the drops the
// buffer's Close reported among them.
func (r *lane) dropLoop() {
	defer close(r.dropDone)
	defer r.sendDrops()
	for {
		select {
		case <-r.dropCtx.Done():
			return
		case <-r.dropKick:
		}
		r.sendDrops()
		select {
		case <-r.dropCtx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// sendDrops hands the pending drop reports to OnDrop.
func (r *lane) sendDrops() {
	r.mu.Lock()
	pend := r.pendDrops
	r.pendDrops = map[string]int{}
	r.mu.Unlock()
	if r.opts.OnDrop != nil {
		for reason, n := range pend {
			r.opts.OnDrop(r.name, n, reason)
		}
	}
}

func (r *lane) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

func (r *Runner) run() {
	defer close(r.done)
	ctx := r.ctx
	bo := backoff{min: r.cfg.BackoffMin, max: r.cfg.BackoffMax}
	isConnected := false
	for ctx.Err() == nil {
		if !isConnected {
			isConnected = r.connect(ctx, &bo)
			continue
		}
		batch, err := r.buf.ReadBatch(ctx, r.cfg.BatchSize, r.cfg.BatchBytes)
		if err != nil {
			if ctx.Err() == nil {
				r.setErr(err)
				r.log.Error("reading the buffer failed", "err", err)
				bo.wait(ctx)
			}
			continue
		}
		batch = r.linger(ctx, batch)
		isConnected = r.deliver(ctx, batch, &bo)
	}
}

// connect calls Connect once, waiting out the backoff after a failure.
func (r *Runner) connect(ctx context.Context, bo *backoff) bool {
	if err := r.sink.Connect(ctx); err != nil {
		if ctx.Err() == nil {
			r.setErr(err)
			r.log.Warn("connect failed; will retry", "err", err, "retry_in", bo.next())
			bo.wait(ctx)
		}
		return false
	}
	r.connected.Set(1)
	r.log.Info("connected")
	return true
}

// linger tops batch up for at most Linger.
func (r *Runner) linger(ctx context.Context, batch []Message) []Message {
	if r.cfg.Linger <= 0 {
		return batch
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.Linger)
	defer cancel()
	size := 0
	for i := range batch {
		size += len(batch[i].Key) + len(batch[i].Value)
	}
	for len(batch) < r.cfg.BatchSize && size < r.cfg.BatchBytes {
		more, err := r.buf.ReadBatch(lctx, r.cfg.BatchSize-len(batch), r.cfg.BatchBytes-size)
		if err != nil {
			break
		}
		for i := range more {
			size += len(more[i].Key) + len(more[i].Value)
		}
		batch = append(batch, more...)
	}
	return batch
}

// deliver writes batch until all of it is acknowledged or ctx is done, in
// which case the rest goes back to the buffer. It reports whether the sink
// is still connected.
func (r *Runner) deliver(ctx context.Context, batch []Message, bo *backoff) bool {
	r.inFlight.Add(int64(len(batch)))
	pending := batch
	defer func() { r.inFlight.Add(-int64(len(pending))) }()
	isConnected := true
	for len(pending) > 0 {
		if ctx.Err() != nil {
			r.buf.Nack(seqsOf(pending)...)
			return isConnected
		}
		if !isConnected {
			if !r.connect(ctx, bo) {
				continue
			}
			r.reconnects.Inc()
			isConnected = true
		}
		wctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
		err := r.sink.Write(wctx, pending)
		cancel()
		if err == nil {
			r.ack(pending)
			r.inFlight.Add(-int64(len(pending)))
			pending = nil
			bo.reset()
			return true
		}
		// What the sink reports delivered is acknowledged even when the
		// write was cut short by a stop or a handover: giving it back
		// would send it twice.
		var pe *PartialError
		if errors.As(err, &pe) {
			pending = r.ackSome(pending, pe.Delivered)
			if len(pe.Delivered) > 0 {
				bo.reset()
			}
		}
		if ctx.Err() != nil {
			continue // shutting down: the rest is nacked above, no error noise
		}
		r.retried.Add(uint64(len(pending)))
		r.setErr(err)
		if errors.Is(err, ErrNotConnected) {
			r.log.Warn("sink lost its connection; reconnecting", "err", err, "pending", len(pending))
			_ = r.sink.Close(ctx)
			r.connected.Set(0)
			isConnected = false
			bo.wait(ctx)
			continue
		}
		r.log.Warn("write failed; will retry", "err", err, "pending", len(pending), "retry_in", bo.next())
		bo.wait(ctx)
	}
	return isConnected
}

// ack acks msgs; acked counts only those the buffer still held, so that a
// message evicted while in flight is counted as dropped and not also as
// acknowledged.
func (r *Runner) ack(msgs []Message) {
	r.acked.Add(uint64(r.buf.Ack(seqsOf(msgs)...)))
}

// ackSome acks the delivered indexes of pending and returns the rest.
func (r *Runner) ackSome(pending []Message, delivered []int) []Message {
	done, rest := SplitDelivered(pending, delivered)
	r.ack(done)
	r.inFlight.Add(-int64(len(done)))
	return rest
}

func seqsOf(msgs []Message) []uint64 {
	s := make([]uint64, len(msgs))
	for i := range msgs {
		s[i] = msgs[i].Seq
	}
	return s
}

// backoff is capped exponential backoff with jitter: the n-th wait is
// uniform in [d/2, d] where d = min(max, min·2ⁿ).
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 30)
	if d > b.max || d <= 0 {
		d = b.max
	}
	return d
}

func (b *backoff) wait(ctx context.Context) {
	d := b.next()
	b.n++
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (b *backoff) reset() { b.n = 0 }
