package perf

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// liveFleet is TestLiveCost's fleet switch: with AUDISP_ENRICH_LIVE_FLEET
// set to a rate in verdicts per second ("0": an idle topic), it starts a
// Kafka-protocol broker (kfake) in this process, creates the fleet's
// topics as `verdicts init` does, puts 1,000 signed verdicts in the
// verdicts topic and produces more at that rate until the test ends, and
// returns the [enrich.fleet] section that makes the measured plugin a
// fleet host following that topic (no VirusTotal key). Unset, it returns
// "" and starts nothing. The broker and producer run in the test process,
// so their CPU is not counted against the plugin.
func liveFleet(t *testing.T, dir string) string {
	s, ok := os.LookupEnv("AUDISP_ENRICH_LIVE_FLEET")
	if !ok {
		return ""
	}
	rate, err := strconv.Atoi(s)
	if err != nil || rate < 0 {
		t.Fatalf("AUDISP_ENRICH_LIVE_FLEET=%q: want verdicts per second (0 or more)", s)
	}
	kf, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)
	addr := kf.ListenAddrs()[0]
	keyFile := filepath.Join(dir, "signing.key")
	pubText, err := fleet.GenerateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := fleet.ReadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sc := fleet.DefaultServiceConfig()
	sc.Brokers = []string{addr}
	sc.SigningKeyFile = keyFile
	sc.Partitions, sc.ReplicationFactor = 4, 1 // one broker
	if _, err := fleet.EnsureTopics(sc, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(sc.VerdictsTopic))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	verdict := func() *kgo.Record {
		n++
		k := fmt.Sprintf("%064x", 1_000_000+n)
		v := fleet.Verdict{Status: fleet.VerdictNotFound, LookedUp: time.Now().Unix(), TTL: 86400, Source: fleet.SourceVirusTotal}
		return &kgo.Record{Key: []byte(k), Value: fleet.EncodeVerdict(k, v, priv)}
	}
	var recs []*kgo.Record
	for range 1000 {
		recs = append(recs, verdict())
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		if rate == 0 {
			return
		}
		tk := time.NewTicker(time.Second / time.Duration(rate))
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				cl.Produce(ctx, verdict(), nil)
			}
		}
	}()
	t.Logf("fleet host: broker %s, 1,000 verdicts in the topic, %d more per second", addr, rate)
	return fmt.Sprintf("[enrich.fleet]\nenabled = true\nbrokers = [%q]\nverdict_public_key = %q\nhost_name = \"live\"\n", addr, pubText)
}

// waitFleetCached waits until the plugin's audisp_enrich_fleet_cached
// gauge reaches want: the host has read the verdicts topic it follows.
func waitFleetCached(t *testing.T, url string, want float64) {
	t.Helper()
	var got float64
	if !testsupport.Until(30*time.Second, func() bool {
		b, err := scrape(url)
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "audisp_enrich_fleet_cached "); ok {
				got, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		return got >= want
	}) {
		t.Fatalf("the fleet host cached %g verdicts, want %g (it did not read the verdicts topic)", got, want)
	}
}
