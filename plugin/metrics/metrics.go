// Package metrics holds the counters, gauges and histograms of audisp-enrich
// and renders them as Prometheus text. It is a leaf package; every stage
// registers its figures here. All types are safe for concurrent use.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Counter is a monotonically increasing count. Increments go to one of
// counterCells cells, each on a cache line of its own, picked by the
// caller's stack address: goroutines counting the same event on different
// cores (the enrichment workers) then seldom write the same line, which
// would cost a cache-line transfer per increment. Value sums the cells.
type Counter struct{ cells [counterCells]counterCell }

const counterCells = 8

type counterCell struct {
	v atomic.Uint64
	_ [56]byte // pad to a 64-byte cache line
}

// cell picks the cell of the calling goroutine: its stacks are 8 KiB and
// larger, so the stack address above 8 KiB differs between goroutines and
// stays put while one runs.
func (c *Counter) cell() *atomic.Uint64 {
	var x byte
	return &c.cells[(uintptr(unsafe.Pointer(&x))>>13)%counterCells].v
}

// Add adds n.
func (c *Counter) Add(n uint64) { c.cell().Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.cell().Add(1) }

// Value returns the count.
func (c *Counter) Value() uint64 {
	var n uint64
	for i := range c.cells {
		n += c.cells[i].v.Load()
	}
	return n
}

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Value returns the value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// Histogram counts observations in fixed buckets (upper bounds, seconds or
// any unit the caller chooses).
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1; the last is +Inf
	sum    atomic.Uint64   // float64 bits
	n      atomic.Uint64
}

// NewHistogram returns a histogram with the given ascending upper bounds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Tally batches observations for h in plain memory. It belongs to one
// goroutine, which calls Flush now and then: a hot loop on several cores
// then does not contend on the histogram's shared atomics. Observations
// reach h (and scrapes) at Flush.
type Tally struct {
	h      *Histogram
	counts []uint64
	sum    float64
	n      uint64
}

// NewTally returns an empty tally for h.
func (h *Histogram) NewTally() *Tally {
	return &Tally{h: h, counts: make([]uint64, len(h.counts))}
}

// Observe records one value in the tally.
func (t *Tally) Observe(v float64) {
	t.counts[sort.SearchFloat64s(t.h.bounds, v)]++
	t.sum += v
	t.n++
}

// Flush adds the tally to its histogram and empties it.
func (t *Tally) Flush() {
	if t.n == 0 {
		return
	}
	for i, c := range t.counts {
		if c > 0 {
			t.h.counts[i].Add(c)
			t.counts[i] = 0
		}
	}
	t.h.n.Add(t.n)
	for {
		old := t.h.sum.Load()
		if t.h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+t.sum)) {
			break
		}
	}
	t.sum, t.n = 0, 0
}

// Quantile estimates the q-quantile (0..1) as the upper bound of the bucket
// holding it; +Inf when it falls past the last bound, 0 with no data.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		if acc >= target {
			if i < len(h.bounds) {
				return h.bounds[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

type entry struct {
	name, help, labels string
	c                  *Counter
	g                  *Gauge
	f                  func() float64
	h                  *Histogram
}

// Registry is a named set of metrics.
type Registry struct {
	mu      sync.Mutex
	entries []entry
}

// Default is the registry the program exposes.
var Default = &Registry{}

// Counter returns the counter called name with labels, registering it on
// first use; a later call with the same name and labels (a reload
// rebuilding a stage) gets the same counter, so a series never repeats and
// counts continue. labels is a Prometheus label set such as
// `sink="kafka",reason="full"` (build values with Label), or "".
func (r *Registry) Counter(name, labels, help string) *Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.find(name, labels); e != nil && e.c != nil {
		return e.c
	}
	c := &Counter{}
	r.put(entry{name: name, labels: labels, help: help, c: c})
	return c
}

// Gauge returns the gauge called name with labels, registering it on first use.
func (r *Registry) Gauge(name, labels, help string) *Gauge {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.find(name, labels); e != nil && e.g != nil {
		return e.g
	}
	g := &Gauge{}
	r.put(entry{name: name, labels: labels, help: help, g: g})
	return g
}

// Func registers a gauge whose value is read from f at scrape time; a later
// registration of the same name and labels replaces f.
func (r *Registry) Func(name, labels, help string, f func() float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.put(entry{name: name, labels: labels, help: help, f: f})
}

// Histogram returns the histogram called name with labels, registering it
// on first use (the bounds of the first registration stay).
func (r *Registry) Histogram(name, labels, help string, bounds ...float64) *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.find(name, labels); e != nil && e.h != nil {
		return e.h
	}
	h := NewHistogram(bounds...)
	r.put(entry{name: name, labels: labels, help: help, h: h})
	return h
}

// find returns the entry of name and labels; r.mu must be held.
func (r *Registry) find(name, labels string) *entry {
	for i := range r.entries {
		if r.entries[i].name == name && r.entries[i].labels == labels {
			return &r.entries[i]
		}
	}
	return nil
}

// put adds e, replacing an entry of the same name and labels; r.mu must be held.
func (r *Registry) put(e entry) {
	if old := r.find(e.name, e.labels); old != nil {
		*old = e
		return
	}
	r.entries = append(r.entries, e)
}

// Label renders one Prometheus label, escaping the value (backslash,
// double quote and newline) as the text format requires.
func Label(name, value string) string {
	return name + `="` + labelEscaper.Replace(value) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Unregister removes the metric called name with exactly labels.
func (r *Registry) Unregister(name, labels string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.entries[:0]
	for _, e := range r.entries {
		if e.name == name && e.labels == labels {
			continue
		}
		kept = append(kept, e)
	}
	r.entries = kept
}

// UnregisterLabel removes every metric whose label set holds label, one
// pair as Label renders it (`sink="kafka"`): all the series of a sink that
// a reload removed, whoever registered them.
func (r *Registry) UnregisterLabel(label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.entries[:0]
	for _, e := range r.entries {
		// Quotes inside values are escaped, so a match at a pair
		// boundary is the pair itself.
		if e.labels == label || strings.HasPrefix(e.labels, label+",") ||
			strings.HasSuffix(e.labels, ","+label) || strings.Contains(e.labels, ","+label+",") {
			continue
		}
		kept = append(kept, e)
	}
	r.entries = kept
}

// WritePrometheus writes every metric in the Prometheus text format 0.0.4.
func (r *Registry) WritePrometheus(w io.Writer) error {
	r.mu.Lock()
	es := append([]entry(nil), r.entries...)
	r.mu.Unlock()
	sort.SliceStable(es, func(i, j int) bool { return es[i].name < es[j].name })
	var b strings.Builder
	last := ""
	for _, e := range es {
		if e.name != last {
			typ := "gauge"
			switch {
			case e.c != nil:
				typ = "counter"
			case e.h != nil:
				typ = "histogram"
			}
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", e.name, e.help, e.name, typ)
			last = e.name
		}
		switch {
		case e.c != nil:
			fmt.Fprintf(&b, "%s%s %d\n", e.name, braces(e.labels), e.c.Value())
		case e.g != nil:
			fmt.Fprintf(&b, "%s%s %d\n", e.name, braces(e.labels), e.g.Value())
		case e.f != nil:
			fmt.Fprintf(&b, "%s%s %g\n", e.name, braces(e.labels), e.f())
		case e.h != nil:
			var acc uint64
			for i := range e.h.counts {
				acc += e.h.counts[i].Load()
				le := "+Inf"
				if i < len(e.h.bounds) {
					le = fmt.Sprintf("%g", e.h.bounds[i])
				}
				fmt.Fprintf(&b, "%s_bucket%s %d\n", e.name, braces(join(e.labels, `le="`+le+`"`)), acc)
			}
			// _count is the +Inf bucket, so that the two always agree
			// even while observations are being added.
			fmt.Fprintf(&b, "%s_sum%s %g\n", e.name, braces(e.labels), math.Float64frombits(e.h.sum.Load()))
			fmt.Fprintf(&b, "%s_count%s %d\n", e.name, braces(e.labels), acc)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Snapshot returns every counter and gauge as name{labels} → value, for the
// status report and the state dump.
func (r *Registry) Snapshot() map[string]float64 {
	r.mu.Lock()
	es := append([]entry(nil), r.entries...)
	r.mu.Unlock()
	m := make(map[string]float64, len(es))
	for _, e := range es {
		k := e.name + braces(e.labels)
		switch {
		case e.c != nil:
			m[k] = float64(e.c.Value())
		case e.g != nil:
			m[k] = float64(e.g.Value())
		case e.f != nil:
			m[k] = e.f()
		case e.h != nil:
			m[k+"_count"] = float64(e.h.Count())
		}
	}
	return m
}

func braces(labels string) string {
	if labels == "" {
		return ""
	}
	return "{" + labels + "}"
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}
