package output

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// captureEvents parses and reassembles the bundled capture
// (plugin/testdata/capture.log) into events.
func captureEvents(tb testing.TB) []*audit.Event {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "plugin", "testdata", "capture.log"))
	if err != nil {
		tb.Fatal(err)
	}
	var evs []*audit.Event
	var p audit.Parser
	r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) { evs = append(evs, ev) })
	for _, l := range bytes.Split(data, []byte{'\n'}) {
		if rec, err := p.Parse(string(l)); err == nil {
			r.Push(rec)
		}
	}
	r.Flush()
	return evs
}

// BenchmarkEncode encodes every event of the bundled capture with each
// encoder the output stage can choose (encoderKey): one op is the whole
// capture; bytes/doc is the mean document size.
func BenchmarkEncode(b *testing.B) {
	evs := captureEvents(b)
	for _, key := range []string{"json", "msgpack", "json/ecs/o0r0", "msgpack/ecs/o0r0", "audit"} {
		b.Run(key, func(b *testing.B) {
			enc := newEncoder(key, "bench-host")
			var out []byte
			var size int
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				size = 0
				for _, ev := range evs {
					out = enc.Append(out[:0], ev)
					size += len(out)
				}
			}
			b.ReportMetric(float64(size)/float64(len(evs)), "bytes/doc")
		})
	}
}
