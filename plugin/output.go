package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/audisp"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
	"github.com/audisp-enrich/audisp-enrich/sinks/file"
	"github.com/audisp-enrich/audisp-enrich/sinks/kafka"
	"github.com/audisp-enrich/audisp-enrich/sinks/syslog"
)

// deliverer takes encoded messages for one sink.
type deliverer interface {
	// publish queues one message; it must not block on the destination.
	publish(m sinks.Message)
	// flush pushes out what is batched (called when the input is idle).
	flush()
	// stop delivers what it can before ctx is done and closes the sink.
	stop(ctx context.Context)
	// reopen is called on SIGHUP.
	reopen()
}

// sinkOut is one configured sink with its encoding and filter.
type sinkOut struct {
	name     string
	encoding string
	filter   sinks.Filter
	d        deliverer
	events   *metrics.Counter
}

// output encodes each event once per encoding in use and hands it to every
// sink. It runs on the single emitting goroutine, so it needs no locks.
type output struct {
	sinks []*sinkOut
	log   *slog.Logger
	host  string
	// needMeta is set when some sink routes or filters on the metadata;
	// otherwise it is not computed.
	needMeta bool
}

// buildOutput opens every sink. onDrop is told about documents a network
// sink's buffer dropped, so that an alert document can follow.
func buildOutput(cfg *conf.Config, reg *metrics.Registry, log *slog.Logger, onDrop func(sink string, n int, reason string)) (*output, error) {
	o := &output{log: log}
	o.host, _ = os.Hostname()
	for i := range cfg.Sinks {
		sc := &cfg.Sinks[i]
		var d deliverer
		switch sc.Type {
		case "stdout":
			d = newDirect(file.NewStream(sc.Name, os.Stdout), log)
		case "file":
			s, err := file.NewFile(sc.Name, sc.File.Path, sc.File.MaxBytes, sc.File.Keep, os.FileMode(sc.File.Mode))
			if err != nil {
				return nil, err
			}
			d = newDirect(s, log)
		default:
			r, err := newRunnerSink(cfg, sc, reg, log, onDrop)
			if err != nil {
				o.stop(context.Background())
				return nil, err
			}
			d = r
			o.needMeta = true
		}
		if !reflect.DeepEqual(sc.Filter, sinks.Filter{}) {
			o.needMeta = true
		}
		o.sinks = append(o.sinks, &sinkOut{
			name: sc.Name, encoding: sc.Encoding, d: d, filter: sc.Filter,
			events: reg.Counter("audisp_enrich_sink_published_total", metrics.Label("sink", sc.Name), "Documents handed to the sink's buffer."),
		})
	}
	return o, nil
}

// wantsJSON reports whether some sink needs the JSON document (json and
// msgpack encodings), so that the pool's workers encode it in parallel.
func (o *output) wantsJSON() bool {
	for _, s := range o.sinks {
		if s.encoding != "audit" {
			return true
		}
	}
	return false
}

// publish hands ev to every sink, in the encoding each wants; jsonDoc is
// the JSON document the pool's worker encoded (nil when no sink wants it).
func (o *output) publish(ev *audit.Event, jsonDoc []byte) {
	var packed []byte
	var meta sinks.Meta
	if o.needMeta {
		meta = metaOf(ev)
	}
	for _, s := range o.sinks {
		if !s.filter.Match(meta) || (ev.Alert != nil && ev.Alert.Sink == s.name) {
			continue // an alert never goes to the sink whose loss it reports
		}
		var v []byte
		switch s.encoding {
		case "msgpack":
			if packed == nil {
				var err error
				packed, err = jsonToMsgpack(jsonDoc)
				if err != nil {
					o.log.Error("msgpack encoding failed", "event", ev.ID.String(), "err", err)
					continue
				}
			}
			v = packed
		case "audit":
			v = auditText(ev, o.host)
		default:
			v = jsonDoc
		}
		s.events.Inc()
		s.d.publish(sinks.Message{Value: v, Meta: meta})
	}
}

// sinkStats returns the delivery figures of every buffered sink.
func (o *output) sinkStats() []sinks.RunnerStats {
	var out []sinks.RunnerStats
	for _, s := range o.sinks {
		if r, ok := s.d.(*runnerSink); ok {
			out = append(out, r.r.Stats())
		}
	}
	return out
}

func (o *output) flush() {
	for _, s := range o.sinks {
		s.d.flush()
	}
}

func (o *output) reopen() {
	for _, s := range o.sinks {
		s.d.reopen()
	}
}

// stop delivers what the sinks can before ctx is done, all sinks at once,
// then closes them. Must not run while publish does.
func (o *output) stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range o.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.d.stop(ctx)
		}()
	}
	wg.Wait()
}

// abortBuffered closes the buffered sinks at once (their buffers too), so
// that a publish blocked on a full buffer (when_full = block) returns. It
// is safe to call while publish runs; undelivered documents stay in disk
// buffers.
func (o *output) abortBuffered() {
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	for _, s := range o.sinks {
		if r, ok := s.d.(*runnerSink); ok {
			r.stop(expired)
		}
	}
}

// metaOf collects the routing hints of an event.
func metaOf(ev *audit.Event) sinks.Meta {
	m := sinks.Meta{Node: ev.ID.Node, Severity: ev.Severity, Kind: ev.Kind.String()}
	for _, r := range ev.Records {
		if !slices.Contains(m.Types, r.Type) {
			m.Types = append(m.Types, r.Type)
		}
		m.Keys = audit.RecordKeys(r, m.Keys)
	}
	for _, t := range ev.Techniques {
		m.Techniques = append(m.Techniques, t.ID)
	}
	m.Tags = ev.Tags
	return m
}

// jsonToMsgpack re-encodes a JSON document as msgpack, so that both
// encodings carry exactly the same model.
func jsonToMsgpack(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := msgpack.NewEncoder(&out)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(numbers(v)); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// numbers turns json.Number into int64 (or float64) for msgpack.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// auditText renders an event as audit text lines, one per record with
// node= set (the local host name when the stream had none, so that the
// collector knows the origin). What enrichers found is appended as
// enrich_* fields: event-wide findings on the first SYSCALL record (or the
// first record), hash findings on the INTEGRITY_RULE record they belong to.
func auditText(ev *audit.Event, host string) []byte {
	node := ev.ID.Node
	if node == "" {
		node = host
	}
	if ev.Kind != audit.KindAudit {
		// Verdicts and alerts have no records: send one user-space style line.
		return []byte(audisp.FormatRecordLine(node, fmt.Sprintf("type=USER msg=audit(%d.%03d:%d): msg='audisp-enrich %s'",
			ev.ID.Sec, ev.ID.Msec, ev.ID.Serial, ev.Kind), enrichFields(ev, -1)) + "\n")
	}
	main := 0
	for i, r := range ev.Records {
		if r.TypeNum == audit.TypeSyscall {
			main = i
			break
		}
	}
	var b []byte
	for i, r := range ev.Records {
		var extra [][2]string
		if i == main {
			extra = enrichFields(ev, -1)
		}
		if r.TypeNum == audit.TypeIntegrityRule {
			extra = append(extra, enrichFields(ev, i)...)
		}
		b = append(b, audisp.FormatRecordLine(node, r.Line, extra)...)
		b = append(b, '\n')
	}
	return b
}

// enrichFields lists the enrich_* fields for the audit text form: the
// event-wide ones (rec < 0) or those of the hashes taken from record rec.
func enrichFields(ev *audit.Event, rec int) [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	if rec < 0 {
		var ids []string
		for _, t := range ev.Techniques {
			ids = append(ids, t.ID)
		}
		add("enrich_technique", strings.Join(ids, ","))
		var rules []string
		for _, h := range ev.Hunt {
			rules = append(rules, h.Rule)
		}
		add("enrich_hunt", strings.Join(rules, ","))
		if ev.Severity > 0 {
			add("enrich_severity", fmt.Sprint(ev.Severity))
		}
		if ev.Parent != nil {
			add("enrich_parent_exe", ev.Parent.Executable)
		}
		if len(ev.Related) > 0 {
			add("enrich_related", strings.Join(ev.Related, ","))
		}
		if ev.Alert != nil {
			add("enrich_alert", fmt.Sprintf("%s:%s:%d", ev.Alert.Sink, ev.Alert.Reason, ev.Alert.Count))
		}
		if ev.Kind == audit.KindAudit {
			return out
		}
	}
	for _, h := range ev.Hashes {
		if rec >= 0 && h.Record != rec {
			continue
		}
		add("enrich_hash", h.Algo+":"+h.Hex)
		for _, l := range ev.Blocklist {
			if l.Hash == h.Hex {
				add("enrich_blocklist", l.List+":"+l.Label)
			}
		}
	}
	if v := ev.VirusTotal; v != nil && (rec >= 0 || ev.Kind == audit.KindVerdict) {
		s := v.Status
		if v.VTVerdict != nil {
			s += fmt.Sprintf(":%d/%d", v.Malicious, v.Malicious+v.Suspicious+v.Harmless+v.Undetected)
		}
		add("enrich_vt", s)
	}
	return out
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
}

func newRunnerSink(cfg *conf.Config, sc *conf.SinkConfig, reg *metrics.Registry, log *slog.Logger, onDrop func(string, int, string)) (*runnerSink, error) {
	var s sinks.Sink
	var err error
	switch sc.Type {
	case "kafka":
		s, err = kafka.New(sc.Name, *sc.Kafka, log)
	case "syslog":
		s, err = syslog.New(sc.Name, *sc.Syslog)
	case "remote":
		s, err = audisp.New(sc.Name, *sc.Remote)
	default:
		err = fmt.Errorf("unknown sink type %q", sc.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
	}
	bc := sc.Buffer
	if bc.Dir == "" {
		bc.Dir = buffer.SpoolDir(cfg.StateDir, sc.Name)
	}
	r, err := sinks.NewRunner(s, sc.Delivery, buffer.Opener(bc, buffer.Options{Name: sc.Name, Logger: log, Metrics: reg}), sinks.RunnerOptions{Metrics: reg, Logger: log, OnDrop: onDrop})
	if err != nil {
		return nil, err
	}
	r.Start()
	return &runnerSink{r: r, log: log, reg: reg}, nil
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

// direct delivers to a local sink (stdout, file) from the output goroutine,
// in batches. Local writes do not wait on the network; a failed write is
// retried once after reopening, then logged and counted.
type direct struct {
	s       sinks.Sink
	batch   []sinks.Message
	arena   []byte // holds the batch's values
	log     *slog.Logger
	failed  *metrics.Counter
	started bool
}

func newDirect(s sinks.Sink, log *slog.Logger) *direct {
	return &direct{s: s, log: log,
		failed: metrics.Default.Counter("audisp_enrich_sink_dropped_total", metrics.Label("sink", s.Name())+`,reason="write_error"`, "Documents a sink could not deliver, by reason.")}
}

func (d *direct) publish(m sinks.Message) {
	// The value buffer is reused by the encoder: copy it into the arena
	// (if the arena grows, earlier values keep the old array alive).
	start := len(d.arena)
	d.arena = append(d.arena, m.Value...)
	m.Value = d.arena[start:len(d.arena):len(d.arena)]
	d.batch = append(d.batch, m)
	if len(d.batch) >= 512 {
		d.flush()
	}
}

func (d *direct) flush() {
	if len(d.batch) == 0 {
		return
	}
	ctx := context.Background()
	if !d.started {
		if err := d.s.Connect(ctx); err != nil {
			d.log.Error("sink connect failed", "sink", d.s.Name(), "err", err)
		}
		d.started = true
	}
	err := d.s.Write(ctx, d.batch)
	if err != nil {
		d.log.Error("sink write failed, retrying once", "sink", d.s.Name(), "err", err)
		if pe := (*sinks.PartialError)(nil); errors.As(err, &pe) {
			d.batch = d.batch[len(pe.Delivered):]
		}
		if err = d.s.Write(ctx, d.batch); err != nil {
			d.failed.Add(uint64(len(d.batch)))
			d.log.Error("sink write failed; documents dropped", "sink", d.s.Name(), "count", len(d.batch), "err", err)
		}
	}
	clear(d.batch)
	d.batch = d.batch[:0]
	d.arena = d.arena[:0]
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
