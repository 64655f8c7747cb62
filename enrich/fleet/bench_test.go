package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
)

// BenchmarkServiceSightings measures how many sightings one service
// instance consumes per second once the fleet's hashes have verdicts (the
// steady state: most sightings are of hashes already known). The timed
// sightings are produced by franz-go into the kfake broker while the
// service consumes them; the producer and the broker run in the same
// process and take their share of the CPU, so the figure is a lower bound.
//
//	go test -run '^$' -bench ServiceSightings -benchtime 20000x ./enrich/fleet/
func BenchmarkServiceSightings(b *testing.B) {
	w := newWorld(b)
	const nHashes = 1000
	var hashes []string
	for i := range nHashes {
		h := hashN(20000 + i)
		hashes = append(hashes, h)
		w.fake.Set(h, vtfake.FileReply(h, 0))
	}
	_, reg, _ := w.startService(b.TempDir())
	r := w.readVerdicts()
	var recs []*kgo.Record
	for _, h := range hashes {
		recs = append(recs, sightingRecord(h, "warm"))
	}
	w.produce(DefaultSightingsTopic, recs...)
	r.wait(b, hashes, 60*time.Second)
	before := sumSightings(reg)

	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.DefaultProduceTopic(DefaultSightingsTopic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.ResetTimer()
	ctx := context.Background()
	go func() {
		for i := range b.N {
			cl.Produce(ctx, sightingRecord(hashes[i%nHashes], "bench"), nil)
		}
	}()
	want := before + uint64(b.N)
	deadline := time.Now().Add(5 * time.Minute)
	for sumSightings(reg) < want {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d sightings", sumSightings(reg)-before, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sightings/s")
}
