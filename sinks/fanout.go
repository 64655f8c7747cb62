package sinks

import (
	"context"
	"errors"
	"sync"
)

// Route is one sink of a Fanout: its runner and an optional filter.
type Route struct {
	Runner *Runner
	// Filter selects the documents this sink gets; nil passes all.
	Filter *Filter
}

// Fanout hands each document to every sink whose filter passes it, by
// appending to that sink's buffer. Appending does not wait for any sink,
// so a slow or dead sink never holds up the others or the caller — except
// a sink whose buffer policy is "block", which by design pushes back on
// the caller once its buffer is full.
//
// Publish is safe for concurrent use, but documents keep their order per
// sink only when one goroutine publishes.
type Fanout struct {
	routes []Route
}

// NewFanout returns a fan-out over routes; sink i in Publish is routes[i].
func NewFanout(routes ...Route) *Fanout {
	return &Fanout{routes: routes}
}

// Len is the number of sinks.
func (f *Fanout) Len() int { return len(f.routes) }

// Publish offers one document to every sink. For each sink whose filter
// passes meta, msgFor(i) returns the document encoded for sink i, or false
// to skip it; it is called at most once per sink, in sink order. A message
// whose Meta is the zero value gets meta. The error joins the buffers'
// errors (drops are already counted and logged by then).
func (f *Fanout) Publish(meta Meta, msgFor func(i int) (Message, bool)) error {
	var errs []error
	for i, r := range f.routes {
		if !r.Filter.Match(meta) {
			continue
		}
		m, ok := msgFor(i)
		if !ok {
			continue
		}
		if metaIsZero(&m.Meta) {
			m.Meta = meta
		}
		if err := r.Runner.Append(m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func metaIsZero(m *Meta) bool {
	return m.Node == "" && m.Kind == "" && m.Severity == 0 && m.Types == nil && m.Keys == nil && m.Techniques == nil
}

// Start starts every runner.
func (f *Fanout) Start() {
	for _, r := range f.routes {
		r.Runner.Start()
	}
}

// Stop stops every runner at once, all within ctx (see Runner.Stop).
func (f *Fanout) Stop(ctx context.Context) error {
	errs := make([]error, len(f.routes))
	var wg sync.WaitGroup
	for i, r := range f.routes {
		wg.Go(func() { errs[i] = r.Runner.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats returns every sink's figures, in sink order.
func (f *Fanout) Stats() []RunnerStats {
	out := make([]RunnerStats, len(f.routes))
	for i, r := range f.routes {
		out[i] = r.Runner.Stats()
	}
	return out
}
