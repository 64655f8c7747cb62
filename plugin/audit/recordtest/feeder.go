package recordtest

import "github.com/audisp-enrich/audisp-enrich/plugin/audit"

// Feeder turns auditd log lines into events as the plugin's reader does
// (parse, then reassemble in stream time), for benchmarks that take events
// in batches as the enrichment pool does. Lines that do not parse are
// skipped. At the end of the lines it flushes and starts them over with a
// new reassembler (the serials repeat), so it never runs dry. One
// goroutine uses it at a time.
type Feeder struct {
	// Events are the events reassembled and not yet taken, in order; the
	// caller takes them (and releases them) by reslicing.
	Events []*audit.Event
	lines  []string
	next   int // the next line to parse
	p      audit.Parser
	ra     *audit.Reassembler
}

// NewFeeder returns a feeder of lines, which must hold at least one event.
func NewFeeder(lines []string) *Feeder {
	f := &Feeder{lines: lines}
	f.restart()
	return f
}

func (f *Feeder) restart() {
	f.ra = audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) { f.Events = append(f.Events, ev) })
	f.next = 0
}

// Fill parses lines until at least n events wait in Events.
func (f *Feeder) Fill(n int) {
	for len(f.Events) < n {
		if f.next == len(f.lines) {
			f.ra.Flush()
			f.restart()
			continue
		}
		if r, err := f.p.Parse(f.lines[f.next]); err == nil {
			f.ra.Push(r)
		}
		f.next++
	}
}
