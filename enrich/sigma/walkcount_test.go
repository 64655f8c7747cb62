package sigma

import (
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// BenchmarkSigmaWalkCounts reports, per event of the corpus
// ($AUDISP_ENRICH_CORPUS, else plugin/testdata/capture.log) with all
// SigmaHQ Linux rules, what the service: auditd walk (auditCtx.walk)
// reads, from the tables it reads them by (scope): records, fields,
// fields looked up by name (finds), values scanned at once and their
// bytes (memo: long enough for the text memo; direct: searched for their
// few literals one by one), values put off until the anchors are known
// and those then scanned, anchor lookups and, of those and of the
// process_creation Image's, the values looked up in a map of keys (the
// filter, index.mayBeKey, let them through), and the candidates and
// matches of each kind. It measures no time: the figures show where the
// walk's work goes (docs/performance.md).
func BenchmarkSigmaWalkCounts(b *testing.B) {
	s, err := Load(sharedRules(b))
	if err != nil {
		b.Fatal(err)
	}
	evs := readEvents(b, benchCorpus())
	x, p := s.idx[kindAuditd], s.idx[kindProcess]
	var c walkCounts
	a := &auditCtx{}
	for b.Loop() {
		c = walkCounts{}
		for _, ev := range evs {
			if ev.Kind != audit.KindAudit {
				continue
			}
			c.events++
			sum := audit.SummaryOf(ev)
			a.ev, a.s, a.types, a.execves, a.arena = ev, sum, 0, 0, a.arena[:0]
			for _, r := range ev.Records {
				if r != nil {
					a.types |= typeBit(r.TypeNum)
					if r.TypeNum == 1309 {
						a.execves++
					}
				}
			}
			a.shared, a.exeShared, a.cmdShared = a.shared[:0], false, false
			cand := x.candidates(a, a)
			c.candA += float64(len(cand))
			for _, i := range cand {
				if x.rules[i].evalRecords(a) {
					c.hitsA++
				}
			}
			// What the walk read, from its tables.
			var later []string
			argsRead := false
			for _, r := range ev.Records {
				if r == nil {
					continue
				}
				c.records++
				rs := x.scope.of(r.TypeNum)
				if !rs.whole && len(rs.fields) == 0 {
					c.skipped++
					continue
				}
				if r.TypeNum == 1309 && !argsRead {
					// the arguments field maps read (walkArgs), once
					argsRead = true
					for _, ar := range rs.args {
						fr, n := &rs.fields[ar.at], ar.n
						if n >= len(sum.Args) {
							continue
						}
						if fr.anchor >= 0 {
							c.anchors++
							if mapLookup(x, fr.anchor, sum.Args[n]) {
								c.anchorMaps++
							}
						}
						if !rs.whole && fr.scan {
							c.scans++
							c.bytes += float64(len(sum.Args[n]))
						}
					}
				}
				for _, fs := range [2][]audit.Field{r.Fields, r.Interp} {
					for i := range fs {
						f := &fs[i]
						c.fields++
						if r.TypeNum == 1309 && isArgName(f.Name) {
							continue // read by walkArgs, or with the command line
						}
						fr := rs.find(f.Name)
						if fr != nil && fr.anchor >= 0 {
							c.anchors++
							if mapLookup(x, fr.anchor, f.Value) {
								c.anchorMaps++
							}
						}
						switch {
						case rs.whole || fr != nil && fr.scan:
							c.scans++
							if !rs.whole && !fr.many() && !(f.Name == "exe" && f.Value == sum.Exe) {
								c.direct++
							}
							if len(f.Value) >= memoMin {
								c.memoBytes += float64(len(f.Value))
							} else {
								c.bytes += float64(len(f.Value))
							}
						case fr != nil && fr.gate != nil:
							c.later++
							if gated(fr.gate, a.bits) {
								later = append(later, f.Value)
							}
						}
					}
				}
			}
			c.laterScans += float64(len(later))
			if sum.Exec {
				if mapLookup(p, anchorImage, sum.Exe) {
					c.anchorMaps++
				}
				a.doc.reset(&a.scratch)
				a.doc.setProcess(sum, ev.Parent)
				cand := p.candidates(a, &a.doc)
				c.candP += float64(len(cand))
				for f := range numFields {
					if a.doc.has&(1<<f) != 0 && (p.scope.docScan&(1<<f) != 0 || gated(p.scope.docGate[f], a.bits)) {
						c.docScans++
					}
				}
				for _, i := range cand {
					if p.rules[i].evalDoc(&a.doc) {
						c.hitsP++
					}
				}
			}
		}
	}
	n := c.events
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{c.records, "records/event"}, {c.skipped, "records-skipped/event"}, {c.fields, "fields/event"},
		{c.scans, "scans/event"}, {c.direct, "direct-scans/event"}, {c.bytes, "short-bytes/event"}, {c.memoBytes, "memo-bytes/event"},
		{c.later, "later/event"}, {c.laterScans, "later-scans/event"}, {c.anchors, "anchor-lookups/event"}, {c.anchorMaps, "anchor-map-lookups/event"},
		{c.candA, "auditd-candidates/event"}, {c.hitsA, "auditd-hits/event"},
		{c.docScans, "doc-scans/event"}, {c.candP, "process-candidates/event"}, {c.hitsP, "process-hits/event"},
	} {
		b.ReportMetric(m.v/n, m.unit)
	}
}

// mapLookup reports whether a.anchor looks the value v of the anchor
// field f up in x's map of keys (the filter, mayBeKey, lets it through).
func mapLookup(x *index, f int, v string) bool {
	if x.byAnchor[f] == nil || v == "" && f == anchorImage {
		return false
	}
	if isPathField(f) {
		v = v[strings.LastIndexByte(v, '/')+1:]
	}
	return x.mayBeKey(f, v)
}

// walkCounts are the sums BenchmarkSigmaWalkCounts reports per event.
type walkCounts struct {
	events, records, skipped, fields, scans, direct, bytes, memoBytes, later, laterScans, anchors, anchorMaps float64
	candA, candP, hitsA, hitsP, docScans                                                                      float64
}
