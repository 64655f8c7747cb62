package gelf

import (
	"context"
	"net"
	"os"
	"testing"

	"golang.org/x/net/ipv4"

	"github.com/audisp-enrich/audisp-enrich/plugin/perf"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// BenchmarkWrite measures the sink alone: flattening, compression and
// sending of ecs documents of the bundled capture over UDP to a local
// socket that discards them, in batches of 500. One op is one message.
// The receiver is a goroutine of the benchmark: its CPU is part of the
// figure (it reads with recvmmsg(2), as a busy GELF input would).
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
		pc := ipv4.NewPacketConn(conn)
		ms := make([]ipv4.Message, 64)
		for i := range ms {
			ms[i].Buffers = [][]byte{make([]byte, 65536)}
		}
		for {
			if _, err := pc.ReadBatch(ms, 0); err != nil {
				return
			}
		}
	}()
	for _, c := range []string{"auto", "gzip", "zlib", "none"} {
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
			// Batches of 500, as the runner hands them over by default;
			// the last one is cut to b.N.
			batch := make([]sinks.Message, 500)
			for i := range batch {
				batch[i] = ms[i%len(ms)]
			}
			b.ReportAllocs()
			cpu0, err := perf.ProcCPU(os.Getpid())
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				if n++; n%len(batch) == 0 {
					if err := s.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.Write(ctx, batch[:n%len(batch)]); err != nil {
				b.Fatal(err)
			}
			cpu1, _ := perf.ProcCPU(os.Getpid())
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			// CPU of the whole process (sink, receiver, GC): on a loaded
			// machine a steadier figure than msgs/s.
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
		})
	}
}
