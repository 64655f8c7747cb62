package metrics

import (
	"math"
	"testing"
)

// A tally reaches its histogram only at Flush, with the same buckets, count
// and sum as direct observations.
func TestTallyFlush(t *testing.T) {
	direct, batched := NewHistogram(1, 10, 100), NewHistogram(1, 10, 100)
	tally := batched.NewTally()
	values := []float64{0.5, 1, 2, 50, 500, 7}
	for _, v := range values {
		direct.Observe(v)
		tally.Observe(v)
	}
	if batched.Count() != 0 || tally.n != uint64(len(values)) {
		t.Fatalf("before Flush: histogram count %d, pending %d", batched.Count(), tally.n)
	}
	tally.Flush()
	tally.Flush() // a second flush adds nothing
	if batched.Count() != direct.Count() || tally.n != 0 {
		t.Fatalf("after Flush: count %d want %d, pending %d", batched.Count(), direct.Count(), tally.n)
	}
	for i := range direct.counts {
		if a, b := direct.counts[i].Load(), batched.counts[i].Load(); a != b {
			t.Errorf("bucket %d: %d, want %d", i, b, a)
		}
	}
	if a, b := math.Float64frombits(direct.sum.Load()), math.Float64frombits(batched.sum.Load()); a != b {
		t.Errorf("sum %v, want %v", b, a)
	}
	if q := batched.Quantile(0.5); q != 10 {
		t.Errorf("median bucket %v, want 10", q)
	}
}

// Increments from many goroutines (spread over the cells) all count.
func TestCounterConcurrent(t *testing.T) {
	var c Counter
	done := make(chan struct{})
	for g := 0; g < 16; g++ {
		go func() {
			for i := 0; i < 1000; i++ {
				c.Inc()
			}
			c.Add(5)
			done <- struct{}{}
		}()
	}
	for g := 0; g < 16; g++ {
		<-done
	}
	if got := c.Value(); got != 16*1005 {
		t.Errorf("Value = %d, want %d", got, 16*1005)
	}
}

// TestUnregisterLabel removes every series carrying the pair, wherever it
// stands in the label set, and nothing else.
func TestUnregisterLabel(t *testing.T) {
	r := &Registry{}
	r.Counter("a_total", `sink="a"`, "")
	r.Counter("b_total", `sink="a",reason="x"`, "")
	r.Gauge("c", `x="1",sink="a"`, "")
	r.Func("d", `x="1",sink="a",y="2"`, "", func() float64 { return 1 })
	r.Counter("a_total", `sink="ab"`, "")
	r.Counter("e_total", Label("k", `sink="a"`), "")
	r.UnregisterLabel(Label("sink", "a"))
	snap := r.Snapshot()
	if len(snap) != 2 {
		t.Fatalf("left %v, want only sink=\"ab\" and the escaped value", snap)
	}
	if _, ok := snap[`a_total{sink="ab"}`]; !ok {
		t.Fatalf("removed the series of another sink: %v", snap)
	}
}
