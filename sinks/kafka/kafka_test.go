package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// TestProduceCodecs produces with every compression codec and checks every
// message, key and header as kcat reads them.
func TestProduceCodecs(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			const topic, n = "audit", 300
			_, addr := startCluster(t, kfake.SeedTopics(3, topic))
			cfg := testConfig(addr, topic)
			cfg.Compression = codec
			s, _ := newSink(t, cfg)

			nodes := []string{"web1", "db2", "ci3"}
			var batch []sinks.Message
			for i := range n {
				batch = append(batch, event(i, nodes[i%3], "audit", 200))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < n; i += 100 {
				if err := s.Write(ctx, batch[i:i+100]); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}

			got := kcat(t, addr, topic)
			if len(got) != n {
				t.Fatalf("kcat read %d messages, want %d", len(got), n)
			}
			sent := map[string]sinks.Message{}
			for i, m := range batch {
				sent[eventIDOf(i, m.Meta.Node)] = m
			}
			partOfNode := map[string]int{}
			for _, c := range got {
				doc := validateEvent(t, *c.Payload)
				id := doc["event"].(map[string]any)["id"].(string)
				m, ok := sent[id]
				if !ok {
					t.Fatalf("unexpected or duplicate event %s", id)
				}
				delete(sent, id)
				if *c.Payload != string(m.Value) {
					t.Fatalf("event %s: payload changed in transit", id)
				}
				if c.Key == nil || *c.Key != m.Meta.Node {
					t.Fatalf("event %s: key %v, want %q", id, c.Key, m.Meta.Node)
				}
				if p, ok := partOfNode[m.Meta.Node]; ok && p != c.Partition {
					t.Fatalf("node %s spread over partitions %d and %d", m.Meta.Node, p, c.Partition)
				}
				partOfNode[m.Meta.Node] = c.Partition
				want := map[string]string{"node": m.Meta.Node, "types": "SYSCALL,EXECVE,PATH",
					"keys": "T1059.004_shell", "techniques": "T1059.004", "severity": "3", "kind": "audit"}
				for k, v := range want {
					if h, ok := c.header(k); !ok || h != v {
						t.Fatalf("event %s: header %s = %q, want %q (headers %v)", id, k, h, v, c.Headers)
					}
				}
				if _, ok := c.header("truncated"); ok {
					t.Fatalf("event %s: unexpected truncated header", id)
				}
			}
			if len(sent) != 0 {
				t.Fatalf("%d events missing", len(sent))
			}
		})
	}
}

// TestProduceOrderWithinPartition checks that one node's events keep their
// order.
func TestProduceOrderWithinPartition(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	const topic, n = "ordered", 1000
	_, addr := startCluster(t, kfake.SeedTopics(2, topic))
	s, _ := newSink(t, testConfig(addr, topic))
	var batch []sinks.Message
	for i := range n {
		batch = append(batch, event(i, "web1", "audit", 0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < n; i += 250 {
		if err := s.Write(ctx, batch[i:i+250]); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	got := kcat(t, addr, topic)
	if len(got) != n {
		t.Fatalf("kcat read %d, want %d", len(got), n)
	}
	for i, c := range got {
		doc := validateEvent(t, *c.Payload)
		serial := doc["event"].(map[string]any)["serial"].(float64)
		if int(serial) != i {
			t.Fatalf("message %d holds serial %v", i, serial)
		}
	}
}

// TestKeyModes checks key = event_id and key = none.
func TestKeyModes(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	for _, mode := range []string{KeyEventID, KeyNone} {
		t.Run(mode, func(t *testing.T) {
			const topic = "keys"
			_, addr := startCluster(t, kfake.SeedTopics(1, topic))
			cfg := testConfig(addr, topic)
			cfg.Key = mode
			cfg.Headers = false
			s, _ := newSink(t, cfg)
			batch := []sinks.Message{event(1, "web1", "audit", 0), event(2, "web1", "alert", 0)}
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := kcat(t, addr, topic)
			if len(got) != 2 {
				t.Fatalf("kcat read %d, want 2", len(got))
			}
			for i, c := range got {
				validateEvent(t, *c.Payload)
				switch mode {
				case KeyEventID:
					if want := eventIDOf(i+1, "web1"); c.Key == nil || *c.Key != want {
						t.Fatalf("key %v, want %q", c.Key, want)
					}
				case KeyNone:
					if c.Key != nil {
						t.Fatalf("key %q, want none", *c.Key)
					}
				}
				if len(c.Headers) != 0 {
					t.Fatalf("headers = false but got %v", c.Headers)
				}
			}
		})
	}
}

// TestTemplatedTopics routes by node, kind and first record type, with
// illegal characters sanitised.
func TestTemplatedTopics(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	_, addr := startCluster(t, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	cfg := testConfig(addr, "audit.{node}.{kind}-{type}")
	s, _ := newSink(t, cfg)
	batch := []sinks.Message{
		event(1, "web1", "audit", 0, "SYSCALL", "PATH"),
		event(2, "web1", "alert", 0, "INTEGRITY_RULE"),
		event(3, "db 2/x", "audit", 0, "USER_LOGIN"),
		event(4, "", "verdict", 0, "SYSCALL"),
		event(5, "web1", "audit", 0, "SYSCALL"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n := deliver(ctx, t, s, batch); n != 1 {
		t.Logf("delivery took %d writes (topic auto-creation)", n)
	}
	want := map[string][]int{
		"audit.web1.audit-SYSCALL":        {1, 5},
		"audit.web1.alert-INTEGRITY_RULE": {2},
		"audit.db_2_x.audit-USER_LOGIN":   {3},
		"audit.unknown.verdict-SYSCALL":   {4},
	}
	for topic, seqs := range want {
		got := kcat(t, addr, topic)
		if len(got) != len(seqs) {
			t.Fatalf("topic %s: kcat read %d, want %d", topic, len(got), len(seqs))
		}
		for i, c := range got {
			doc := validateEvent(t, *c.Payload)
			if serial := int(doc["event"].(map[string]any)["serial"].(float64)); serial != seqs[i] {
				t.Fatalf("topic %s: message %d is event %d, want %d", topic, i, serial, seqs[i])
			}
		}
	}
}

// TestOversizedTruncated sends events larger than max_message_bytes and
// checks the flagged, truncated variant arrives instead.
func TestOversizedTruncated(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	const topic = "big"
	_, addr := startCluster(t, kfake.SeedTopics(1, topic))
	cfg := testConfig(addr, topic)
	cfg.MaxMessageBytes = 4096
	s, _ := newSink(t, cfg)
	small, big := event(1, "web1", "audit", 100), event(2, "web1", "alert", 50000)
	if err := s.Write(context.Background(), []sinks.Message{small, big}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := kcat(t, addr, topic)
	if len(got) != 2 {
		t.Fatalf("kcat read %d, want 2", len(got))
	}
	validateEvent(t, *got[0].Payload)
	if _, ok := got[0].header("truncated"); ok {
		t.Fatal("small event flagged as truncated")
	}
	checkTruncated(t, got[1], big, 4096)
	if v := s.st.truncated.Value(); v != 1 {
		t.Fatalf("truncated counter = %d, want 1", v)
	}
}

// TestBrokerLimitTruncated: the broker's message.max.bytes is below
// max_message_bytes; the rejected event goes out again truncated.
func TestBrokerLimitTruncated(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	const topic = "brokerlimit"
	_, addr := startCluster(t, kfake.SeedTopics(1, topic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "3000"}))
	cfg := testConfig(addr, topic)
	cfg.Compression = "none"
	s, _ := newSink(t, cfg)
	big := event(7, "web1", "audit", 20000)
	if err := s.Write(context.Background(), []sinks.Message{big}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := kcat(t, addr, topic)
	if len(got) != 1 {
		t.Fatalf("kcat read %d, want 1", len(got))
	}
	checkTruncated(t, got[0], big, 3000)
}

func checkTruncated(t *testing.T, c consumed, orig sinks.Message, max int) {
	t.Helper()
	if h, ok := c.header("truncated"); !ok || h != "true" {
		t.Fatalf("truncated header missing: %v", c.Headers)
	}
	if len(*c.Payload) > max {
		t.Fatalf("truncated payload has %d bytes, limit %d", len(*c.Payload), max)
	}
	var doc struct {
		Truncated     bool   `json:"truncated"`
		Kind          string `json:"kind"`
		Event         struct{ ID string }
		OriginalBytes int    `json:"original_bytes"`
		Head          string `json:"head"`
	}
	if err := jsonUnmarshalStrict(*c.Payload, &doc); err != nil {
		t.Fatalf("truncated payload: %v: %.300s", err, *c.Payload)
	}
	if !doc.Truncated || doc.Kind != orig.Meta.Kind || doc.Event.ID != eventID(orig.Value) ||
		doc.OriginalBytes != len(orig.Value) || len(doc.Head) < 200 || !strings.HasPrefix(string(orig.Value), doc.Head) {
		t.Fatalf("truncated variant wrong: %+v (head %d bytes)", doc, len(doc.Head))
	}
}

// TestBrokerRestart stops the only broker mid-stream and starts it again on
// the same port; with the runner's retries nothing is lost.
func TestBrokerRestart(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	const topic, total, batchSize = "restart", 3000, 100
	port, dir := testsupport.FreePort(t, "tcp"), t.TempDir()
	opts := []kfake.Opt{kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(2, topic)}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := testConfig(addr, topic)
	cfg.WriteTimeout = 2 * time.Second
	s, logs := newSink(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var down time.Time // written before restarted is sent, read after
	restarted := make(chan *kfake.Cluster, 1)
	closed := make(chan struct{})
	writes := 0
	for i := 0; i < total; i += batchSize {
		var batch []sinks.Message
		for j := i; j < i+batchSize; j++ {
			batch = append(batch, event(j, fmt.Sprintf("n%d", j%4), "audit", 300))
		}
		if i == total/3 {
			// Every broker goes down while the next Writes are in
			// flight, and comes back on the same port 1.5 s later.
			go func() {
				time.Sleep(3 * time.Millisecond)
				c.Close()
				down = time.Now()
				close(closed)
				time.Sleep(1500 * time.Millisecond)
				c2, err := kfake.NewCluster(opts...)
				if err != nil {
					t.Errorf("restart kfake on port %d: %v", port, err)
				}
				restarted <- c2
			}()
		}
		writes += deliver(ctx, t, s, batch)
		if i == total/3 {
			// The batches after the one in flight at the close come
			// after it, however the goroutines were scheduled.
			<-closed
		}
	}
	c2 := <-restarted
	if c2 == nil {
		t.FailNow()
	}
	defer c2.Close()
	t.Logf("outage from %s; %d Write calls for %d batches", down.Format(time.TimeOnly), writes, total/batchSize)
	if writes <= total/batchSize {
		t.Fatalf("the outage caused no failed Write (%d writes); the test did not test an outage", writes)
	}

	got := kcat(t, addr, topic)
	seen := map[string]int{}
	for _, m := range got {
		doc := validateEvent(t, *m.Payload)
		seen[doc["event"].(map[string]any)["id"].(string)]++
	}
	missing, dups := 0, 0
	for j := range total {
		switch n := seen[eventIDOf(j, fmt.Sprintf("n%d", j%4))]; {
		case n == 0:
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("kcat read %d messages: %d unique of %d, %d duplicates", len(got), len(seen), total, dups)
	if missing != 0 || len(seen) != total {
		t.Fatalf("%d events lost (%d unique seen, %d sent)\nsink log:\n%s", missing, len(seen), total, logs)
	}
}

// TestCloseBrokersDown: Close returns within 1 s when every broker is down
// and messages are still inside the producer.
func TestCloseBrokersDown(t *testing.T) {
	const topic = "down"
	c, addr := startCluster(t, kfake.SeedTopics(1, topic))
	cfg := testConfig(addr, topic)
	cfg.RetryMax = 10
	cfg.RetryBackoff = 500 * time.Millisecond // retries would take 5 s
	cfg.CloseTimeout = 200 * time.Millisecond
	s, err := New(t.Name(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []sinks.Message{event(1, "a", "audit", 0)}); err != nil {
		t.Fatalf("Write while up: %v", err)
	}
	c.Close()
	// Leave messages in the producer's retry loop.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = s.Write(ctx, []sinks.Message{event(2, "a", "audit", 0), event(3, "a", "audit", 0)})
	cancel()
	if err == nil {
		t.Fatal("Write with every broker down succeeded")
	}
	start := time.Now()
	cerr := s.Close(context.Background())
	// close_timeout is 200 ms; the margin is for a busy machine, and still
	// far below the 5 s the producer's retries would take.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Close took %s with brokers down and close_timeout 200ms, want it not to wait for the retries", d)
	}
	t.Logf("Close returned after %s: %v", time.Since(start), cerr)

	// Connect with no broker fails and returns when its ctx ends.
	s2, err := New(t.Name()+"2", cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s2.Connect(ctx); err == nil {
		t.Fatal("Connect with every broker down succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Connect took %s after its ctx ended", d)
	}
	if err := s2.Write(context.Background(), []sinks.Message{event(4, "a", "audit", 0)}); err != sinks.ErrNotConnected {
		t.Fatalf("Write before a successful Connect = %v, want ErrNotConnected", err)
	}
}

// TestPartialDelivery: messages for a topic that does not exist fail while
// the others are delivered; Write names exactly the delivered ones, and the
// next Write asks for a reconnect.
func TestPartialDelivery(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	_, addr := startCluster(t, kfake.SeedTopics(1, "audit"))
	cfg := testConfig(addr, "{kind}")
	s, _ := newSink(t, cfg)
	batch := []sinks.Message{event(0, "a", "audit", 0), event(1, "a", "alert", 0), event(2, "a", "audit", 0), event(3, "a", "alert", 0)}
	err := s.Write(context.Background(), batch)
	var pe *sinks.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Write = %v, want a *sinks.PartialError", err)
	}
	slices.Sort(pe.Delivered)
	if !slices.Equal(pe.Delivered, []int{0, 2}) {
		t.Fatalf("delivered %v, want [0 2] (%v)", pe.Delivered, pe.Err)
	}
	if err := s.Write(context.Background(), batch[:1]); !errors.Is(err, sinks.ErrNotConnected) {
		t.Fatalf("Write after a failure = %v, want ErrNotConnected", err)
	}
	got := kcat(t, addr, "audit")
	if len(got) != 2 {
		t.Fatalf("kcat read %d, want 2", len(got))
	}
	if s.st.failed.Value() != 2 || s.st.delivered.Value() != 2 {
		t.Fatalf("counters: delivered %d failed %d", s.st.delivered.Value(), s.st.failed.Value())
	}
}
