package enrich

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Pool runs a chain of enrichers over events on a bounded set of workers.
//
// Ordering: events leave (through the out function given to NewPool) in
// exactly the order they were submitted, whatever the number of workers;
// so the order per node is the reassembler's order. Each event passes the
// enrichers in chain order on one worker. Submit blocks when Queue events
// are in the pool, which is the pool's bound.
//
// Deadline: each audit event's chain runs under a context whose deadline
// is the timeout after the chain started, so an enricher that may wait
// (VirusTotal's max_wait) stops waiting by then. The context is the
// worker's own, reset for each event (see chainCtx): it costs no
// allocation and no timer unless an enricher asks for its Done channel. An enricher error, or a
// call that takes longer than the timeout, becomes a warning on the event
// and is counted; the event always goes on.
//
// Before the enrichers, the worker summarises an audit event once
// (ev.Summary) for every enricher and the encoder; it clears it again
// before the event leaves. After the enrichers, the worker calls encode
// (when set) so that encoding runs in parallel too; its result reaches out
// with the event. The bytes belong to the pool and are reused once out
// returns.
//
// Timing: each enricher call of one audit event in latencySample per
// worker, its first included, is timed (the latency histogram is sampled); every event's chain
// is timed as a whole (see run). Metrics: each worker tallies its calls,
// errors, slow calls and latencies locally and adds them to the shared metrics every flushEvery calls and
// whenever the queue is empty, so workers do not contend on them.
type Pool struct {
	chain   []Enricher
	timeout time.Duration
	jobs    chan *job
	order   chan *job
	encode  Encoder
	out     func(ev *audit.Event, encoded []byte)
	wg      sync.WaitGroup
	done    chan struct{}
	free    sync.Pool
	stats   []enricherStats
}

type enricherStats struct {
	calls, errors, slow *metrics.Counter
	latency             *metrics.Histogram
}

type job struct {
	ev      *audit.Event
	barrier func() // set for a Barrier, which has no event
	buf     []byte
	done    chan struct{}
}

// Encoder encodes an enriched event on worker w (0 <= w < workers), appending
// to dst. Each worker calls it with its own w, so per-worker state needs no
// locks.
type Encoder func(w int, ev *audit.Event, dst []byte) []byte

// NewPool starts workers goroutines and the ordered emitter. out is called
// from a single goroutine, in submission order. encode may be nil.
func NewPool(chain []Enricher, workers, queue int, timeout time.Duration, reg *metrics.Registry, encode Encoder, out func(ev *audit.Event, encoded []byte)) *Pool {
	p := &Pool{
		chain: chain, timeout: timeout, out: out, encode: encode,
		jobs:  make(chan *job, queue),
		order: make(chan *job, queue),
		done:  make(chan struct{}),
	}
	p.free.New = func() any { return &job{done: make(chan struct{}, 1)} }
	for _, e := range chain {
		l := metrics.Label("enricher", e.Name())
		p.stats = append(p.stats, enricherStats{
			calls:   reg.Counter("audisp_enrich_enricher_calls_total", l, "Enricher calls."),
			errors:  reg.Counter("audisp_enrich_enricher_errors_total", l, "Enricher calls that returned an error."),
			slow:    reg.Counter("audisp_enrich_enricher_slow_total", l, "Enricher calls that took longer than the timeout."),
			latency: reg.Histogram("audisp_enrich_enricher_seconds", l, "Enricher call latency.", 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1),
		})
	}
	for w := range max(workers, 1) {
		p.wg.Add(1)
		go p.work(w)
	}
	go p.emit()
	return p
}

// Submit hands an event to the pool. It must not be called after Close.
func (p *Pool) Submit(ev *audit.Event) {
	j := p.free.Get().(*job)
	j.ev = ev
	p.order <- j
	p.jobs <- j
}

// Barrier makes the emitting goroutine call f once every event submitted
// before it has been passed to out, and before any event submitted after
// it. It does not wait for f. The runtime uses it to flush batched output
// where out runs. Like Submit, it must not be called after Close.
func (p *Pool) Barrier(f func()) {
	j := p.free.Get().(*job)
	j.barrier = f
	j.done <- struct{}{}
	p.order <- j
}

// Close waits until every submitted event has been passed to out.
func (p *Pool) Close() {
	close(p.jobs)
	p.wg.Wait()
	close(p.order)
	<-p.done
}

// flushEvery bounds how many enricher calls a worker tallies before it adds
// them to the shared metrics; it also flushes whenever the queue is empty,
// so figures lag only while events stream in.
const flushEvery = 256

// tally is one worker's unflushed figures for one enricher.
type tally struct {
	calls, errors, slow uint64
	latency             *metrics.Tally
}

func (p *Pool) work(w int) {
	defer p.wg.Done()
	var ctx chainCtx
	// The event's fields are extracted once, here, for every enricher and
	// the encoder (audit.Event.Summary); sum is reused for each job.
	var sum audit.Summary
	tallies := make([]tally, len(p.chain))
	for i := range tallies {
		tallies[i].latency = p.stats[i].latency.NewTally()
	}
	defer p.flush(tallies)
	n, timeNext := 0, false
	for j := range p.jobs {
		if j.ev.Kind == audit.KindAudit && (len(p.chain) > 0 || p.encode != nil) {
			audit.Summarize(j.ev, &sum)
			j.ev.Summary = &sum
			if len(p.chain) > 0 {
				n++
				timeNext = p.run(&ctx, j.ev, tallies, timeNext || sampled(n))
			}
		}
		j.buf = j.buf[:0]
		if p.encode != nil {
			j.buf = p.encode(w, j.ev, j.buf)
		}
		j.ev.Summary = nil
		j.done <- struct{}{}
		if len(tallies) > 0 && (tallies[0].calls >= flushEvery || len(p.jobs) == 0) {
			p.flush(tallies)
		}
	}
}

// latencySample is how often a worker times each enricher call: one audit
// event in latencySample, starting with its first (so the latency
// histogram has figures from the first events on), and every event after
// one that was slow. The
// other events have their whole chain timed only (two clock readings
// instead of one per enricher, and no histogram update per enricher, which
// is measurable at 100k events/s). At 1000 events/s the workers together
// still time each enricher about 30 times a second.
const latencySample = 32

// sampled reports whether a worker's n-th audit event (n from 1) has each
// enricher call timed (see latencySample).
func sampled(n int) bool { return n%latencySample == 1 }

// run passes ev through the chain. With timed, each call is timed (one
// reading of the monotonic clock per enricher, each call's end being the
// next one's start): its latency is observed and a call longer than the
// timeout is counted and noted on the event. Without, only the chain as a
// whole is timed, and when it took longer than the timeout the event gets
// a warning that names no enricher. run reports whether the event was
// slow, so that the next one is timed per enricher.
func (p *Pool) run(ctx *chainCtx, ev *audit.Event, tallies []tally, timed bool) (slow bool) {
	first := time.Now()
	ctx.reset(first.Add(p.timeout))
	defer ctx.end()
	var start time.Duration // the call's start, since first
	for i, e := range p.chain {
		t := &tallies[i]
		err := e.Enrich(ctx, ev)
		t.calls++
		if err != nil {
			t.errors++
			ev.Warnings = append(ev.Warnings, e.Name()+": "+err.Error())
		}
		if !timed {
			continue
		}
		// time.Since reads only the monotonic clock (time.Now reads the
		// wall clock too).
		end := time.Since(first)
		d := end - start
		start = end
		t.latency.Observe(d.Seconds())
		if d > p.timeout {
			t.slow++
			slow = true
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("%s: took %s (timeout %s)", e.Name(), d.Round(time.Microsecond), p.timeout))
		}
	}
	if !timed {
		if d := time.Since(first); d > p.timeout {
			slow = true
			ev.Warnings = append(ev.Warnings, fmt.Sprintf("enrichers took %s together (timeout %s each; the next events are timed one by one)", d.Round(time.Microsecond), p.timeout))
		}
	}
	return slow
}

// flush adds a worker's tallies to the shared metrics and resets them.
func (p *Pool) flush(tallies []tally) {
	for i := range tallies {
		t, st := &tallies[i], &p.stats[i]
		if t.calls == 0 {
			continue
		}
		st.calls.Add(t.calls)
		st.errors.Add(t.errors)
		st.slow.Add(t.slow)
		t.latency.Flush()
		t.calls, t.errors, t.slow = 0, 0, 0
	}
}

func (p *Pool) emit() {
	defer close(p.done)
	for j := range p.order {
		<-j.done
		if j.barrier != nil {
			j.barrier()
			j.barrier = nil
			p.free.Put(j)
			continue
		}
		p.out(j.ev, j.buf)
		j.ev = nil
		if cap(j.buf) > 1<<20 {
			j.buf = nil // don't keep a huge buffer for every job
		}
		p.free.Put(j)
	}
}

// chainCtx is a worker's context for the chain of one event at a time: the
// pool sets its deadline before the chain (reset) and ends it after (end).
// Its Deadline and Err are plain reads; the Done channel, and the timer
// that closes it at the deadline, are made only when an enricher asks for
// Done (one that waits: VirusTotal, the proc table's /proc reads), so the
// usual event costs neither an allocation nor a timer. The guarantee is
// context.WithTimeout's: Done is closed by the deadline and Err then
// reports context.DeadlineExceeded. An enricher must not keep ctx after
// its Enrich returns: the next event reuses it.
type chainCtx struct {
	at    time.Time
	mu    sync.Mutex // guards done and timer (Done may be called from any goroutine)
	done  chan struct{}
	timer *time.Timer
	// made is set when Done made a channel for this event, so that end
	// takes the lock only then (the usual event asks for no Done).
	made atomic.Bool
}

func (c *chainCtx) reset(at time.Time) { c.at = at }

// end stops the timer of a Done channel made for this event, if any.
func (c *chainCtx) end() {
	if !c.made.Load() {
		return
	}
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer, c.done = nil, nil
	c.made.Store(false)
	c.mu.Unlock()
}

func (c *chainCtx) Deadline() (time.Time, bool) { return c.at, true }

func (c *chainCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		done := make(chan struct{})
		c.done = done
		c.made.Store(true)
		if d := time.Until(c.at); d > 0 {
			c.timer = time.AfterFunc(d, func() { close(done) })
		} else {
			close(done) // Err may have said so already
		}
	}
	return c.done
}

// Err is nil until the deadline; once Done was asked for, until it is
// closed, so the two always agree.
func (c *chainCtx) Err() error {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done != nil {
		select {
		case <-done:
			return context.DeadlineExceeded
		default:
			return nil
		}
	}
	if time.Now().Before(c.at) {
		return nil
	}
	return context.DeadlineExceeded
}

func (c *chainCtx) Value(any) any { return nil }
