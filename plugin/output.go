package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/file"
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

// sinkOut is one configured sink with its encoding.
type sinkOut struct {
	name     string
	encoding string
	d        deliverer
	events   *metrics.Counter
}

// output encodes each event once per encoding in use and hands it to every
// sink. It runs on the single emitting goroutine, so it needs no locks.
type output struct {
	sinks []*sinkOut
	json  audit.JSONEncoder
	buf   []byte
	log   *slog.Logger
}

func buildOutput(cfg *conf.Config, reg *metrics.Registry, log *slog.Logger) (*output, error) {
	o := &output{log: log}
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
			o.stop(context.Background())
			return nil, fmt.Errorf("sink %q: type %s is not available in this build", sc.Name, sc.Type)
		}
		o.sinks = append(o.sinks, &sinkOut{
			name: sc.Name, encoding: sc.Encoding, d: d,
			events: reg.Counter("audisp_enrich_sink_published_total", `sink="`+sc.Name+`"`, "Documents handed to the sink's buffer."),
		})
	}
	return o, nil
}

// publish encodes ev and hands it to every sink.
func (o *output) publish(ev *audit.Event) {
	var jsonDoc, packed []byte
	meta := metaOf(ev)
	for _, s := range o.sinks {
		var v []byte
		switch s.encoding {
		case "msgpack":
			if packed == nil {
				if jsonDoc == nil {
					o.buf = o.json.Append(o.buf[:0], ev)
					jsonDoc = o.buf
				}
				var err error
				packed, err = jsonToMsgpack(jsonDoc)
				if err != nil {
					o.log.Error("msgpack encoding failed", "event", ev.ID.String(), "err", err)
					continue
				}
			}
			v = packed
		case "audit":
			v = auditText(ev)
		default:
			if jsonDoc == nil {
				o.buf = o.json.Append(o.buf[:0], ev)
				jsonDoc = o.buf
			}
			v = jsonDoc
		}
		s.events.Inc()
		s.d.publish(sinks.Message{Value: v, Meta: meta})
	}
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

func (o *output) stop(ctx context.Context) {
	for _, s := range o.sinks {
		s.d.stop(ctx)
	}
}

// metaOf collects the routing hints of an event.
func metaOf(ev *audit.Event) sinks.Meta {
	m := sinks.Meta{Node: ev.ID.Node, Severity: ev.Severity, Kind: ev.Kind.String()}
	for _, r := range ev.Records {
		if !containsString(m.Types, r.Type) {
			m.Types = append(m.Types, r.Type)
		}
		if k, ok := r.Get("key"); ok && !audit.IsSentinel(k) {
			m.Keys = audit.SplitKeys(k, m.Keys)
		}
	}
	for _, t := range ev.Techniques {
		m.Techniques = append(m.Techniques, t.ID)
	}
	return m
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
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

// auditText renders an event as audit text lines (one per record, node=
// set) for collectors that expect auditd's own format.
func auditText(ev *audit.Event) []byte {
	var b []byte
	for _, r := range ev.Records {
		line := r.Line
		if r.Node == "" && ev.ID.Node != "" {
			b = append(b, "node="...)
			b = append(b, ev.ID.Node...)
			b = append(b, ' ')
		}
		b = append(b, line...)
		b = append(b, '\n')
	}
	return b
}

// direct delivers to a local sink (stdout, file) from the output goroutine,
// in batches. Local writes do not wait on the network; a failed write is
// retried once after reopening, then logged and counted.
type direct struct {
	s       sinks.Sink
	batch   []sinks.Message
	log     *slog.Logger
	failed  *metrics.Counter
	started bool
}

func newDirect(s sinks.Sink, log *slog.Logger) *direct {
	return &direct{s: s, log: log,
		failed: metrics.Default.Counter("audisp_enrich_sink_dropped_total", `sink="`+s.Name()+`",reason="write_error"`, "Documents a sink could not deliver, by reason.")}
}

func (d *direct) publish(m sinks.Message) {
	// The value buffer is reused by the encoder: copy it.
	m.Value = append([]byte(nil), m.Value...)
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
		if pe, ok := err.(*sinks.PartialError); ok {
			d.batch = d.batch[len(pe.Delivered):]
		}
		if err = d.s.Write(ctx, d.batch); err != nil {
			d.failed.Add(uint64(len(d.batch)))
			d.log.Error("sink write failed; documents dropped", "sink", d.s.Name(), "count", len(d.batch), "err", err)
		}
	}
	clear(d.batch)
	d.batch = d.batch[:0]
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
