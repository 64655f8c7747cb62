package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/sinktest"
)

// TestConformance runs the sinks.Sink conformance suite against a kfake
// broker, reading back with kcat.
func TestConformance(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	const topic = "sinktest"
	_, addr := startCluster(t, kfake.SeedTopics(1, topic))
	cfg := testConfig(addr, topic)
	sinktest.Run(t, func(t *testing.T) sinks.Sink {
		s, err := New("conformance", cfg, &metrics.Registry{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}, func(t *testing.T) [][]byte {
		var out [][]byte
		for _, m := range kcat(t, addr, topic) {
			if m.Payload != nil {
				out = append(out, []byte(*m.Payload))
			}
		}
		return out
	})
}

// TestMetricsSurviveReconnect: the runner closes a sink that lost its
// connection and connects it again; the sink's series must stay in the
// registry and go on counting (they vanished at the first Close).
func TestMetricsSurviveReconnect(t *testing.T) {
	const topic = "reconnect"
	_, addr := startCluster(t, kfake.SeedTopics(1, topic))
	reg := &metrics.Registry{}
	s, err := New("kafka", testConfig(addr, topic), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const series = `audisp_enrich_kafka_messages_delivered_total{sink="kafka"}`
	for round := 1; round <= 3; round++ {
		if err := s.Connect(ctx); err != nil {
			t.Fatalf("Connect round %d: %v", round, err)
		}
		deliver(ctx, t, s, []sinks.Message{event(round, "n", "audit", 0)})
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close round %d: %v", round, err)
		}
		got, ok := reg.Snapshot()[series]
		if !ok {
			t.Fatalf("round %d: %s missing from the registry after Close", round, series)
		}
		if got != float64(round) {
			t.Fatalf("round %d: %s = %g, want %d", round, series, got, round)
		}
		if c := reg.Snapshot()[`audisp_enrich_kafka_connects_total{sink="kafka"}`]; c != float64(round) {
			t.Fatalf("round %d: connects_total = %g, want %d", round, c, round)
		}
	}
}
