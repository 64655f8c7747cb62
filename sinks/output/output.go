// Package output is the output stage: for every document it selects the
// sinks whose filter passes it and hands each the document in that sink's
// encoding, through one contract (deliverer) whether the sink is local
// (stdout, file: written in batches from the publishing goroutine) or
// networked (kafka, syslog, remote: appended to the sink's buffer, which a
// sinks.Runner delivers).
//
// Encoding happens on the enrichment workers (Encode, in parallel); the
// filter and the hand-off happen on the pool's single emitting goroutine
// (Deliver, Flush), in document order, so every sink receives documents in
// input order.
//
// A reload builds the next stage beside the running one (Prepare) and
// swaps it in only when every sink built (Start); see Prepare for what a
// reload keeps.
package output

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sync"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// Options are the runtime parts of a Stage.
type Options struct {
	// Metrics is where every sink registers its series (once per sink
	// name; a reload continues them).
	Metrics *metrics.Registry
	Logger  *slog.Logger
	// OnDrop is told about documents a network sink's buffer dropped, so
	// that an alert document can follow (see sinks.RunnerOptions.OnDrop).
	OnDrop func(sink string, n int, reason string)
}

// Stage is the output stage of one configuration.
type Stage struct {
	cfg   *conf.Config
	opts  Options
	lanes []*lane
	// keys are the encoders in use (see encoderKey); lane.enc indexes it.
	keys []string
	// workers holds one encode.Encoder per key for each enrichment worker.
	workers [][]encode.Encoder
	// needMeta is set when some sink routes or filters on the metadata;
	// otherwise it is not computed.
	needMeta bool
	// needLists is set when some sink reads the metadata's record types,
	// keys and techniques (readsLists): collecting them costs an
	// allocation and a pass over the records per event.
	needLists bool
	parts     [][]byte // Deliver's scratch
	// built lists the lanes this stage opened that are not running yet
	// (closed by Discard, started by Start).
	built []*lane
}

// lane is one configured sink.
type lane struct {
	sc        conf.SinkConfig
	enc       int
	published *metrics.Counter
	d         deliverer
}

// New builds the stage for cfg: every sink is built and every network
// sink's buffer opened; nothing is delivered before Start. workers is the
// number of enrichment workers that will call Encode.
func New(cfg *conf.Config, workers int, opts Options) (*Stage, error) {
	return prepare(cfg, workers, opts, nil)
}

// Prepare builds the stage for cfg beside the running s, without touching
// s. A sink whose settings did not change is kept as it runs (connection,
// buffer and all). A network sink whose settings changed gets a new Sink
// (TLS files and secrets are read now) that takes over the running
// sink's buffer at Start, so nothing it holds is lost; its [sink.buffer]
// settings take effect at the next start of the program (logged). New
// sinks are built and their buffers opened. If any sink fails to build,
// Prepare closes what it built and returns the error; s runs on.
func (s *Stage) Prepare(cfg *conf.Config, workers int) (*Stage, error) {
	return prepare(cfg, workers, s.opts, s)
}

func prepare(cfg *conf.Config, workers int, opts Options, prev *Stage) (*Stage, error) {
	if opts.Metrics == nil {
		opts.Metrics = metrics.Default
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	st := &Stage{cfg: cfg, opts: opts}
	fail := func(err error) (*Stage, error) {
		st.Discard()
		return nil, err
	}
	for i := range cfg.Sinks {
		sc := &cfg.Sinks[i]
		old := prev.lane(sc.Name)
		l := &lane{sc: *sc, published: opts.Metrics.Counter("audisp_enrich_sink_published_total", metrics.Label("sink", sc.Name), "Documents handed to the sink's buffer.")}
		switch {
		case old != nil && sameSink(&old.sc, sc):
			l.d = old.d
		case sc.Local():
			s, err := newLocalSink(sc)
			if err != nil {
				return fail(err)
			}
			l.d = newDirect(s, opts.Metrics, opts.Logger)
			st.built = append(st.built, l)
		case old != nil && !old.sc.Local():
			s, err := newSink(sc, opts.Metrics, opts.Logger)
			if err != nil {
				return fail(err)
			}
			if !reflect.DeepEqual(old.sc.Buffer, sc.Buffer) {
				opts.Logger.Warn("reload: the sink keeps its running buffer; the new [sink.buffer] settings take effect at the next start", "sink", sc.Name)
			}
			r := newRunnerSink(old.d.(*runnerSink).r, opts)
			r.next, r.cfg = s, sc.Delivery
			l.d = r
			st.built = append(st.built, l)
		default:
			s, err := newSink(sc, opts.Metrics, opts.Logger)
			if err != nil {
				return fail(err)
			}
			r, err := openRunner(cfg.StateDir, sc, s, opts)
			if err != nil {
				return fail(err)
			}
			l.d = r
			st.built = append(st.built, l)
		}
		if !sc.Local() || !reflect.DeepEqual(sc.Filter, sinks.Filter{}) {
			st.needMeta = true
		}
		if readsLists(sc) {
			st.needLists = true
		}
		key := encoderKey(sc)
		l.enc = slices.Index(st.keys, key)
		if l.enc < 0 {
			l.enc = len(st.keys)
			st.keys = append(st.keys, key)
		}
		st.lanes = append(st.lanes, l)
	}
	host, _ := os.Hostname()
	st.workers = make([][]encode.Encoder, max(workers, 1))
	for w := range st.workers {
		for _, k := range st.keys {
			st.workers[w] = append(st.workers[w], newEncoder(k, host))
		}
	}
	st.parts = make([][]byte, len(st.keys))
	return st, nil
}

// Discard closes what New or Prepare built for s, which was never started;
// the running stage Prepare was called on is not touched. It does not
// wait for delivery: a runner that never started delivers nothing, and
// what its buffer holds stays there (disk) or is counted as lost (memory).
func (s *Stage) Discard() {
	ctx := context.Background()
	for _, l := range s.built {
		r, ok := l.d.(*runnerSink)
		switch {
		case !ok:
			l.d.stop(ctx)
		case r.next != nil:
			_ = r.next.Close(ctx)
		default:
			_ = r.r.Stop(ctx)
		}
	}
	s.built = nil
}

// sameSink reports whether two sink tables say the same (the line of the
// table aside).
func sameSink(a, b *conf.SinkConfig) bool {
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	return reflect.DeepEqual(x, y)
}

// lane returns the running lane named name, or nil.
func (s *Stage) lane(name string) *lane {
	if s == nil {
		return nil
	}
	for _, l := range s.lanes {
		if l.sc.Name == name {
			return l
		}
	}
	return nil
}

// Start begins delivery. With prev (a reload; its documents must all have
// been delivered to it, and nothing may call prev again), changed network
// sinks take over their buffers from prev's runners, and prev's sinks that
// s does not keep are stopped within ctx: what they hold and cannot
// deliver in time stays in their disk buffers (a memory buffer's rest is
// lost and counted); the series of sinks that are gone are removed.
func (s *Stage) Start(ctx context.Context, prev *Stage) {
	kept := map[deliverer]bool{}
	for _, l := range s.lanes {
		kept[l.d] = true
		if r, ok := l.d.(*runnerSink); ok {
			kept[r] = true
		}
	}
	var handed []*runnerSink
	for _, l := range s.lanes {
		if r, ok := l.d.(*runnerSink); ok && r.next != nil {
			handed = append(handed, r)
		}
	}
	var wg sync.WaitGroup
	if prev != nil {
		for _, l := range prev.lanes {
			if kept[l.d] {
				continue
			}
			if r, ok := l.d.(*runnerSink); ok && slices.ContainsFunc(handed, func(h *runnerSink) bool { return h.r == r.r }) {
				continue // handed over below
			}
			wg.Go(func() {
				l.d.stop(ctx)
				if s.lane(l.sc.Name) == nil {
					s.opts.Metrics.UnregisterLabel(metrics.Label("sink", l.sc.Name))
				}
			})
		}
	}
	for _, r := range handed {
		wg.Go(func() {
			nr, err := r.r.Handover(ctx, r.next, r.cfg)
			if err != nil {
				// Only a programming error gets here (same name, validated
				// config): keep delivering with the running sink.
				s.opts.Logger.Error("reload: sink handover failed; the running sink stays", "sink", r.r.Name(), "err", err)
				_ = r.next.Close(ctx)
				return
			}
			r.r, r.next = nr, nil
		})
	}
	wg.Wait()
	s.built = nil
	for _, l := range s.lanes {
		if r, ok := l.d.(*runnerSink); ok {
			r.r.Start()
		}
	}
}

// Encode appends the document for ev in every encoding in use to dst. It
// is called by enrichment worker w (0 <= w < workers given to New), which
// owns the encoders it uses. With one encoding in use dst gets the
// document alone; with several, each comes after its 4-byte length.
func (s *Stage) Encode(w int, ev *audit.Event, dst []byte) []byte {
	encs := s.workers[w]
	if len(encs) == 1 {
		return encs[0].Append(dst, ev)
	}
	for _, e := range encs {
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst = e.Append(dst, ev)
		binary.LittleEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	}
	return dst
}

// Deliver hands ev, encoded by Encode, to every sink whose filter passes
// it. It runs on one goroutine, in document order; encoded is not kept.
func (s *Stage) Deliver(ev *audit.Event, encoded []byte) {
	if len(s.keys) == 1 {
		s.parts[0] = encoded
	} else {
		for i := range s.parts {
			n := binary.LittleEndian.Uint32(encoded)
			s.parts[i], encoded = encoded[4:4+n], encoded[4+n:]
		}
	}
	var meta sinks.Meta
	if s.needMeta {
		meta = metaOf(ev, s.needLists)
	}
	for _, l := range s.lanes {
		if !l.sc.Filter.Match(meta) || (ev.Alert != nil && ev.Alert.Sink == l.sc.Name) {
			continue // an alert never goes to the sink whose loss it reports
		}
		v := s.parts[l.enc]
		if len(v) == 0 {
			s.opts.Logger.Error("document could not be encoded; not sent", "sink", l.sc.Name, "encoding", s.keys[l.enc], "event", ev.ID.String())
			continue
		}
		l.published.Inc()
		l.d.publish(sinks.Message{Value: v, Meta: meta})
	}
}

// Flush writes what the local sinks batched. It runs where Deliver does.
func (s *Stage) Flush() {
	for _, l := range s.lanes {
		l.d.flush()
	}
}

// Reopen makes file sinks reopen their files (SIGHUP, after logrotate).
// Safe to call from any goroutine.
func (s *Stage) Reopen() {
	for _, l := range s.lanes {
		l.d.reopen()
	}
}

// Stats returns the delivery figures of every network sink.
func (s *Stage) Stats() []sinks.RunnerStats {
	var out []sinks.RunnerStats
	for _, l := range s.lanes {
		if r, ok := l.d.(*runnerSink); ok {
			out = append(out, r.r.Stats())
		}
	}
	return out
}

// Stop delivers what the sinks can before ctx is done, all sinks at once,
// then closes them. It must not run while Deliver does.
func (s *Stage) Stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range s.lanes {
		wg.Go(func() { l.d.stop(ctx) })
	}
	wg.Wait()
}

// Abort closes the network sinks at once (their buffers too), so that a
// Deliver blocked on a full buffer (when_full = block) returns. It is safe
// to call while Deliver runs; undelivered documents stay in disk buffers.
func (s *Stage) Abort() {
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	for _, l := range s.lanes {
		if r, ok := l.d.(*runnerSink); ok {
			r.stop(expired)
		}
	}
}

// metaOf collects the routing hints of an event; the record types (by
// name: a record sent as type=1300 or UNKNOWN[1300] is a SYSCALL), rule
// keys and techniques only with lists (see readsLists).
func metaOf(ev *audit.Event, lists bool) sinks.Meta {
	m := sinks.Meta{Node: ev.ID.Node, Severity: ev.Severity, Kind: ev.Kind.String(), Tags: ev.Tags}
	if !lists {
		return m
	}
	for _, r := range ev.Records {
		if t := r.CanonicalType(); !slices.Contains(m.Types, t) {
			m.Types = append(m.Types, t)
		}
		m.Keys = audit.RecordKeys(r, m.Keys)
	}
	for _, t := range ev.Techniques {
		if t.ID != "" { // "": tactics only
			m.Techniques = append(m.Techniques, t.ID)
		}
	}
	return m
}
