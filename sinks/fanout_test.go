package sinks_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// A dead sink (Write never returns) must not hold up a live one or the
// publisher; Stop must still finish in time.
func TestFanoutDeadSinkDoesNotHoldUpOthers(t *testing.T) {
	s := newSetup(t)
	release := make(chan struct{})
	defer close(release)
	dead := &testSink{name: "dead", behave: func(int, []sinks.Message) error { <-release; return nil }}
	live := &testSink{name: "live"}
	f := sinks.NewFanout(
		sinks.Route{Runner: s.runner(t, dead, fastConfig())},
		sinks.Route{Runner: s.runner(t, live, fastConfig())},
	)
	f.Start()
	const n = 3000
	start := time.Now()
	for i := range n {
		err := f.Publish(sinks.Meta{Kind: "audit"}, func(sink int) (sinks.Message, bool) {
			return sinks.Message{Value: fmt.Appendf(nil, "s%d-%05d", sink, i)}, true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("publishing %d took %v with a dead sink", n, d)
	}
	testsupport.WaitFor(t, 5*time.Second, "the live sink", func() bool { return len(live.delivered()) == n })
	for i, v := range live.delivered() {
		if v != fmt.Sprintf("s1-%05d", i) {
			t.Fatalf("live sink got %q at %d", v, i)
		}
	}
	st := f.Stats()
	if st[0].Sink != "dead" || st[0].Queued != n || st[1].Acked != n {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start = time.Now()
	err := f.Stop(ctx)
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Fatalf("Stop took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "dead") {
		t.Fatalf("Stop error %v should name the stuck sink", err)
	}
}

func TestFanoutFiltersAndMeta(t *testing.T) {
	s := newSetup(t)
	all := &testSink{name: "all"}
	alerts := &testSink{name: "alerts"}
	skip := &testSink{name: "skip"}
	runners := []*sinks.Runner{s.runner(t, all, fastConfig()), s.runner(t, alerts, fastConfig()), s.runner(t, skip, fastConfig())}
	f := sinks.NewFanout(
		sinks.Route{Runner: runners[0]},
		sinks.Route{Runner: runners[1], Filter: &sinks.Filter{Kinds: []string{"alert"}}},
		sinks.Route{Runner: runners[2]},
	)
	if f.Len() != 3 {
		t.Fatal("Len")
	}
	f.Start()
	var asked []int
	for i, kind := range []string{"audit", "alert", "audit"} {
		meta := sinks.Meta{Kind: kind, Node: fmt.Sprint("n", i)}
		f.Publish(meta, func(sink int) (sinks.Message, bool) {
			asked = append(asked, sink)
			return sinks.Message{Value: []byte(kind)}, sink != 2
		})
	}
	if !slices.Equal(asked, []int{0, 2, 0, 1, 2, 0, 2}) {
		t.Fatalf("msgFor called for %v; filtered sinks must not be encoded for", asked)
	}
	testsupport.WaitFor(t, 5*time.Second, "deliveries", func() bool { return len(all.delivered()) == 3 && len(alerts.delivered()) == 1 })
	if !slices.Equal(alerts.delivered(), []string{"alert"}) || len(skip.delivered()) != 0 {
		t.Fatalf("alerts %v skip %v", alerts.delivered(), skip.delivered())
	}
}
