package output

import (
	"path/filepath"
	"testing"
)

// BenchmarkEncode encodes every event of the bundled capture with each
// encoder the output stage can choose (encoderKey): one op is the whole
// capture; bytes/doc is the mean document size.
func BenchmarkEncode(b *testing.B) {
	evs := logEvents(b, filepath.Join("..", "..", "plugin", "testdata", "capture.log"))
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
