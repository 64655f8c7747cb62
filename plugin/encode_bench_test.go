package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/recordtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks/output"
)

// encodeProfiles are the sink settings BenchmarkEncodeEnriched encodes
// with, by sub-benchmark name: the output stage picks the encoder from
// them as it does for a configured sink.
var encodeProfiles = []struct{ name, sink string }{
	{"json", ``},
	{"msgpack", `encoding = "msgpack"`},
	{"ecs", `profile = "ecs"`},
	{"ecs-original", "profile = \"ecs\"\noriginal = true"},
}

// encodeChainConfig is the enricher chain of BenchmarkEncodeEnriched:
// the local enrichers that add to the corpus's events (process table
// without its /proc fallback, ATT&CK, hunting rules) and every SigmaHQ
// Linux rule. The hash enrichers (blocklist, package trust) find no hash
// in the corpus and add nothing.
func encodeChainConfig(b *testing.B) *conf.Config {
	base := testsupport.SharedDir(b, "sigma")
	cfg, err := conf.Parse("encode-bench.toml", fmt.Appendf(nil, `state_dir = %q
[log]
syslog = false
[enrich.proc]
proc_fallback = false
[enrich.sigma]
rules = [%q, %q]
reload_interval = "0s"
`, b.TempDir(), filepath.Join(base, "rules", "linux"), filepath.Join(base, "rules-threat-hunting", "linux")))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// encodeStage returns the output stage of one sink (a file on /dev/null)
// with the given settings, for one worker.
func encodeStage(b *testing.B, settings string) *output.Stage {
	cfg, err := conf.Parse("encode-sink.toml", fmt.Appendf(nil, `state_dir = %q
[log]
syslog = false
[[sink]]
type = "file"
%s
[sink.file]
path = "/dev/null"
max_bytes = 0
`, b.TempDir(), settings))
	if err != nil {
		b.Fatal(err)
	}
	st, err := output.New(cfg, 1, output.Options{Metrics: &metrics.Registry{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	st.Start(b.Context(), nil)
	b.Cleanup(func() { st.Stop(context.Background()) })
	return st
}

// sections returns the variants of ev whose encodings differ by one
// section of the full profile each: identity and records only (no
// enrichment, an empty summary), then with the summary (process, user,
// file, tags), then ev itself (what the enrichers added: threat, hunt,
// sigma, the process context, the severity). Each is a copy of the event
// (the records are shared), the three side by side, so that they are
// equally far from the encoder's caches.
func sections(ev *audit.Event) [3]*audit.Event {
	v := new([3]audit.Event)
	v[0], v[1], v[2] = *ev, *ev, *ev
	v[0].Enrichment, v[0].Summary = audit.Enrichment{}, &audit.Summary{}
	v[1].Enrichment = audit.Enrichment{Tags: ev.Tags, Parent: ev.Parent}
	return [3]*audit.Event{&v[0], &v[1], &v[2]}
}

var sectionNames = [3]string{"records", "summary", "enrichment"}

// BenchmarkEncodeEnriched measures the output encoders alone on the
// events of the corpus ($AUDISP_ENRICH_CORPUS, else the bundled capture),
// bare and enriched by the real chain with every SigmaHQ Linux rule
// (encodeChainConfig; the enrichment runs once, untimed). Two settings:
//
//   - cold/PROFILE: every event of the corpus is encoded in turn, bare
//     then enriched (parsed, enriched and summarized beforehand: a few
//     hundred MB, so every event comes from main memory). With the
//     profiles json and msgpack, cold/PROFILE/records and /summary encode
//     the section variants (sections): the differences are the cost and
//     the bytes of each section.
//   - warm/PROFILE (and its sections): the same over the corpus's first
//     warmEvents events only, which stay in the processor's caches: the
//     encoders' own work.
//   - pipeline/PROFILE/SET: as in the pipeline, the lines are parsed in
//     batches of the pool's 64 events in flight, then each event gets its
//     summary, the chain (enriched only) and its encoding, and is
//     released; ns/event times the encoding alone (per event, the
//     clock's own cost taken off), ns/op and allocs/op are the whole
//     step per event. SET/records encodes the records-only variant, to
//     show whether the same records cost more after the chain ran.
//
// Reported: ns/event (the encoding's wall time per event, the clock's
// cost taken off), with its median and the mean of the fastest 99 % of
// the events (see reportTimes; cold: each prefixed bare- or enriched-),
// and B/event (the document's mean size); ns/op is a bare and an
// enriched encoding with their clock readings (cold, warm) or the whole
// step (pipeline). Run with GOMAXPROCS=1.
func BenchmarkEncodeEnriched(b *testing.B) {
	lines := benchLines(b)
	cfg := encodeChainConfig(b)
	log := slog.New(slog.DiscardHandler)
	enr, err := buildEnrichers(&cfg.Enrich, nil, log, &metrics.Registry{}, nil, false, nil, false, nil, nil, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer enr.close()
	bare := parseEvents(lines)
	enriched := parseEvents(lines)
	var sums [2][]audit.Summary
	for i, evs := range [2][]*audit.Event{bare, enriched} {
		sums[i] = make([]audit.Summary, len(evs))
		for j, ev := range evs {
			if ev.Kind != audit.KindAudit {
				continue
			}
			audit.Summarize(ev, &sums[i][j])
			ev.Summary = &sums[i][j]
			if i == 1 {
				runChain(enr.chain, ev)
			}
		}
	}
	hits := 0
	for _, ev := range enriched {
		hits += len(ev.Sigma)
	}
	if hits == 0 {
		b.Fatal("no Sigma rule matched any event: the enriched set would be measured bare")
	}
	var variants [2][3][]*audit.Event
	for i, evs := range [2][]*audit.Event{bare, enriched} {
		for _, ev := range evs {
			for s, v := range sections(ev) {
				variants[i][s] = append(variants[i][s], v)
			}
		}
	}
	// The records of an event are the same, bare or enriched: the
	// enrichers add to the event, not to its records.
	js := encodeStage(b, "")
	var x, y []byte
	for i := range variants[0][0] {
		x = js.Encode(0, variants[0][0][i], x[:0])
		y = js.Encode(0, variants[1][0][i], y[:0])
		if string(x) != string(y) {
			b.Fatalf("event %d: the records encode differently once enriched:\n%s\n%s", i, x, y)
		}
	}
	runtime.GC()
	for _, p := range encodeProfiles {
		st := encodeStage(b, p.sink)
		for _, mode := range []struct {
			name string
			n    int
		}{{"cold", len(bare)}, {"warm", min(len(bare), warmEvents)}} {
			b.Run(mode.name+"/"+p.name, func(b *testing.B) { benchEncodeCold(b, st, variants[0][2][:mode.n], variants[1][2][:mode.n]) })
			if p.name != "json" && p.name != "msgpack" {
				continue
			}
			for s, name := range sectionNames[:2] {
				b.Run(mode.name+"/"+p.name+"/"+name, func(b *testing.B) { benchEncodeCold(b, st, variants[0][s][:mode.n], variants[1][s][:mode.n]) })
			}
		}
	}
	bare, enriched, variants = nil, nil, [2][3][]*audit.Event{}
	runtime.GC()
	for _, p := range encodeProfiles {
		st := encodeStage(b, p.sink)
		for _, set := range []string{"bare", "enriched"} {
			var chain []enrich.Enricher
			if set == "enriched" {
				chain = enr.chain
			}
			b.Run("pipeline/"+p.name+"/"+set, func(b *testing.B) { benchEncodePipeline(b, st, lines, chain, 2) })
			if p.name == "json" {
				b.Run("pipeline/"+p.name+"/"+set+"/records", func(b *testing.B) { benchEncodePipeline(b, st, lines, chain, 0) })
			}
		}
	}
}

// parseEvents parses and reassembles lines; the events are not released.
func parseEvents(lines []string) []*audit.Event {
	var evs []*audit.Event
	var p audit.Parser
	ra := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) { evs = append(evs, ev) })
	for _, l := range lines {
		if r, err := p.Parse(l); err == nil {
			ra.Push(r)
		}
	}
	ra.Flush()
	return evs
}

// runChain passes an audit event through chain, as a pool worker does.
func runChain(chain []enrich.Enricher, ev *audit.Event) {
	ctx := context.Background()
	for _, e := range chain {
		if err := e.Enrich(ctx, ev); err != nil {
			ev.Warnings = append(ev.Warnings, e.Name()+": "+err.Error())
		}
	}
}

// benchEncodeCold encodes bare[i] then enriched[i] for each i in turn,
// timing each (the clock's own cost taken off), so that both sets meet
// the same load of a busy machine.
func benchEncodeCold(b *testing.B, st *output.Stage, bare, enriched []*audit.Event) {
	var out []byte
	var size [2]int
	for i := range bare {
		size[0] += len(st.Encode(0, bare[i], out[:0]))
		size[1] += len(st.Encode(0, enriched[i], out[:0]))
	}
	clock := clockCost()
	var spent [2][]time.Duration
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for k, ev := range [2]*audit.Event{bare[n%len(bare)], enriched[n%len(bare)]} {
			t0 := time.Now()
			out = st.Encode(0, ev, out[:0])
			spent[k] = append(spent[k], time.Since(t0)-clock)
		}
		n++
	}
	for k, set := range []string{"bare", "enriched"} {
		reportTimes(b, set+"-", spent[k])
		b.ReportMetric(float64(size[k])/float64(len(bare)), set+"-B/event")
	}
}

// reportTimes reports the mean of the per-event times ts (ns/event), their
// median (p50-ns/event) and the mean of the fastest 99 % (fast99-ns/event):
// on a busy machine a few windows include the time another process held
// the core, which the last two leave out.
func reportTimes(b *testing.B, prefix string, ts []time.Duration) {
	if len(ts) == 0 {
		return
	}
	var sum time.Duration
	for _, t := range ts {
		sum += t
	}
	slices.Sort(ts)
	var fast time.Duration
	keep := max(len(ts)*99/100, 1)
	for _, t := range ts[:keep] {
		fast += t
	}
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(ts)), prefix+"ns/event")
	b.ReportMetric(float64(ts[len(ts)/2].Nanoseconds()), prefix+"p50-ns/event")
	b.ReportMetric(float64(fast.Nanoseconds())/float64(keep), prefix+"fast99-ns/event")
}

// warmEvents is how many events the warm variants encode over and over
// (about 2 MB of documents and records together: most stay in the L2
// and L3 caches).
const warmEvents = 256

// pipelineBatch is the events in flight between the parser and a pool
// worker when the pipeline is busy ([enrich] queue, conf.Defaults).
const pipelineBatch = 64

// benchEncodePipeline: see BenchmarkEncodeEnriched. section indexes
// sections' variants (0 records only, 2 the whole event).
func benchEncodePipeline(b *testing.B, st *output.Stage, lines []string, chain []enrich.Enricher, section int) {
	feed := recordtest.NewFeeder(lines)
	var (
		sum audit.Summary
		out []byte
	)
	clock := clockCost()
	b.ReportAllocs()
	spent := make([]time.Duration, 0, b.N)
	var size, n int
	b.ResetTimer()
	for n < b.N {
		feed.Fill(pipelineBatch)
		for _, ev := range feed.Events {
			if n == b.N {
				break
			}
			if ev.Kind == audit.KindAudit {
				audit.Summarize(ev, &sum)
				ev.Summary = &sum
				runChain(chain, ev)
			}
			v := sections(ev)[section]
			t0 := time.Now()
			out = st.Encode(0, v, out[:0])
			spent = append(spent, time.Since(t0)-clock)
			size += len(out)
			n++
		}
		for _, ev := range feed.Events {
			ev.Summary = nil
			ev.Release()
		}
		feed.Events = feed.Events[:0]
	}
	reportTimes(b, "", spent)
	b.ReportMetric(float64(size)/float64(n), "B/event")
}

// clockCost is the cost of a time.Now, time.Since pair.
func clockCost() time.Duration {
	const n = 10000
	var d time.Duration
	for range n {
		t := time.Now()
		d += time.Since(t)
	}
	return d / n
}
