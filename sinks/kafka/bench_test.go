package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// BenchmarkProduce measures produce throughput to an in-process kfake broker
// over loopback: ~1 KiB JSON events, Write batches of 500, every message
// acknowledged before the next batch (as the runner does). The broker's CPU
// is included. "blackhole" brokers acknowledge without storing (memory stays
// flat for long runs); "stored" keeps the log.
//
//	go test -run '^$' -bench Produce -benchtime 200000x ./sinks/kafka/
func BenchmarkProduce(b *testing.B) {
	for _, bc := range []struct {
		name      string
		codec     string
		idem      bool
		blackhole bool
	}{
		{"lz4-idempotent-blackhole", "lz4", true, true},
		{"none-idempotent-blackhole", "none", true, true},
		{"zstd-idempotent-blackhole", "zstd", true, true},
		{"lz4-acksall-blackhole", "lz4", false, true},
		{"lz4-idempotent-stored", "lz4", true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := []kfake.Opt{kfake.SeedTopics(3, "bench")}
			if bc.blackhole {
				opts = append(opts, kfake.BlackholeProduce())
			}
			_, addr := startCluster(b, opts...)
			cfg := testConfig(addr, "bench")
			cfg.Compression = bc.codec
			cfg.Idempotent = bc.idem
			s, _ := newSink(b, cfg)

			const batchSize = 500
			events := make([]sinks.Message, 2*batchSize)
			total := 0
			for i := range events {
				events[i] = benchEvent(i)
				total += len(events[i].Value)
			}
			b.SetBytes(int64(total / len(events)))
			if b.N == 1 {
				b.Logf("mean value size %d bytes", total/len(events))
			}
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; sent += batchSize {
				n := min(batchSize, b.N-sent)
				off := sent % len(events) / batchSize * batchSize
				if err := s.Write(ctx, events[off:off+n]); err != nil {
					b.Fatalf("Write: %v", err)
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		})
	}
}

// benchEvent is a ~1 KiB event whose command line is random hex, so it
// compresses about as well as real audit text.
func benchEvent(i int) sinks.Message {
	raw := make([]byte, 300)
	_, _ = rand.Read(raw)
	m := event(i, fmt.Sprintf("host%02d", i%16), "audit", 0, "SYSCALL", "EXECVE", "CWD", "PATH")
	var v []byte
	v = append(v, m.Value[:len(m.Value)-1]...)
	v = append(v, `,"x":"`...)
	v = append(v, hex.EncodeToString(raw)[:430]...)
	v = append(v, `"}`...)
	m.Value = v
	return m
}
