package gelf

import (
	"context"
	"net"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// BenchmarkWrite measures the sink alone: flattening, compression and
// sending of ecs documents of the bundled capture over UDP to a local
// socket that discards them, in batches of 500. One op is one message.
func BenchmarkWrite(b *testing.B) {
	var ms []sinks.Message
	for _, m := range docs(b) {
		if m.Meta.Node != "" { // the ecs documents
			ms = append(ms, m)
		}
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	for _, c := range []string{"gzip", "zlib", "none"} {
		b.Run(c, func(b *testing.B) {
			s, err := New("bench-"+c, Config{Address: conn.LocalAddr().String(), Compression: c}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			batch := make([]sinks.Message, 500)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n%len(batch) == 0 {
					for i := range batch {
						batch[i] = ms[(n+i)%len(ms)]
					}
				}
				if err := s.Write(ctx, batch[n%len(batch):n%len(batch)+1]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
