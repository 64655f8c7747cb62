package fleet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// follower reads every partition of the verdicts topic from the oldest
// offset on, verifies each message with the service's public key and hands
// verified verdicts to its callback (one goroutine per partition, so the
// callback must be safe for concurrent use; one key always comes from one
// partition, in order). The callback returns false for a verdict older
// than the one it holds for the key (result "stale"). Rejected messages
// are counted by reason and logged (rate limited by the counter: the
// first of each reason, then every 1000th). A tombstone (nil value) is
// not signed: it is counted and logged as "unsigned" and, with a valid
// digest key, handed to the callback with a nil verdict, whose result is
// ignored (the callback must not drop the key's verdict for it; the
// service produces its verdict again). The partitions are those of the
// topic at start.
type follower struct {
	client sarama.Client
	topic  string
	next   map[int32]*atomic.Int64 // per partition: the offset after the last message handled
	keys   verdictKeys
	fn     func(key string, v *Verdict, raw []byte, ts time.Time) bool
	log    *slog.Logger
	cons   sarama.Consumer
	pcs    []sarama.PartitionConsumer
	wg     sync.WaitGroup

	behind   atomic.Int64  // partitions still short of the high-water mark seen at start
	caughtUp chan struct{} // closed when behind reaches 0

	ok       *metrics.Counter
	stale    *metrics.Counter
	oldKey   *metrics.Counter
	rejected map[error]*metrics.Counter
}

// verdictKeys are the public keys a follower checks signatures with:
// verdicts signed by one of accept are taken; verdicts signed by one of
// retired (keys rotated out) are ignored and counted as old_key, apart
// from bad_signature, the forgery alarm.
type verdictKeys struct {
	accept, retired []ed25519.PublicKey
}

var errOldKey = errors.New("fleet: verdict signed by a retired key")

// retiredKeys parses retired_verdict_public_keys (hosts' and the service's).
func retiredKeys(ss []string) ([]ed25519.PublicKey, error) {
	ks := make([]ed25519.PublicKey, 0, len(ss))
	for i, s := range ss {
		pub, err := ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("retired_verdict_public_keys[%d]: %w", i, err)
		}
		ks = append(ks, pub)
	}
	return ks, nil
}

// decode is DecodeVerdict with each accepted key in turn, and errOldKey
// for a verdict that verifies under a retired key only.
func (k verdictKeys) decode(key, value []byte) (Verdict, error) {
	var v Verdict
	err := ErrBadSignature
	for _, pub := range k.accept {
		if v, err = DecodeVerdict(key, value, pub); !errors.Is(err, ErrBadSignature) {
			return v, err
		}
	}
	for _, pub := range k.retired {
		if _, e := DecodeVerdict(key, value, pub); e == nil {
			return Verdict{}, errOldKey
		}
	}
	return v, err
}

// rejectReasons are the decode errors counted as rejected verdicts.
var rejectReasons = map[error]string{
	ErrUnsigned:     "unsigned",
	ErrBadSignature: "bad_signature",
	ErrMalformed:    "malformed",
	ErrBadKey:       "bad_key",
}

func startFollower(client sarama.Client, topic string, keys verdictKeys, reg *metrics.Registry, log *slog.Logger,
	fn func(key string, v *Verdict, raw []byte, ts time.Time) bool) (*follower, error) {
	f := &follower{client: client, topic: topic, next: map[int32]*atomic.Int64{}, keys: keys, fn: fn, log: log, caughtUp: make(chan struct{}), rejected: map[error]*metrics.Counter{}}
	const name, help = "audisp_enrich_fleet_verdicts_read_total", "Verdict messages read from the verdicts topic, by result."
	f.ok = reg.Counter(name, `result="ok"`, help)
	f.stale = reg.Counter(name, `result="stale"`, help)
	f.oldKey = reg.Counter(name, `result="old_key"`, help)
	for err, r := range rejectReasons {
		f.rejected[err] = reg.Counter(name, metrics.Label("result", r), help)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("fleet: verdicts topic %s: %w", topic, err)
	}
	if f.cons, err = sarama.NewConsumerFromClient(client); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	for _, p := range parts {
		f.next[p] = new(atomic.Int64)
	}
	f.behind.Store(int64(len(parts)))
	if len(parts) == 0 {
		close(f.caughtUp)
	}
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err == nil {
			var oldest int64
			if oldest, err = client.GetOffset(topic, p, sarama.OffsetOldest); err == nil && oldest >= hwm {
				f.partitionCaughtUp()
				hwm = -1
			}
		}
		if err != nil {
			f.close()
			return nil, fmt.Errorf("fleet: verdicts topic %s partition %d: %w", topic, p, err)
		}
		pc, err := f.cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("fleet: verdicts topic %s partition %d: %w", topic, p, err)
		}
		f.pcs = append(f.pcs, pc)
		f.wg.Add(2)
		go f.read(pc, hwm)
		go f.errors(pc)
	}
	return f, nil
}

func (f *follower) partitionCaughtUp() {
	if f.behind.Add(-1) == 0 {
		close(f.caughtUp)
	}
}

func (f *follower) read(pc sarama.PartitionConsumer, hwm int64) {
	defer f.wg.Done()
	for m := range pc.Messages() {
		f.handle(m)
		f.next[m.Partition].Store(m.Offset + 1)
		if hwm >= 0 && m.Offset+1 >= hwm {
			f.partitionCaughtUp()
			hwm = -1
		}
	}
}

func (f *follower) errors(pc sarama.PartitionConsumer) {
	defer f.wg.Done()
	for err := range pc.Errors() {
		f.log.Warn("fleet: reading the verdicts topic", "partition", err.Partition, "err", err.Err)
	}
}

func (f *follower) handle(m *sarama.ConsumerMessage) {
	key := string(m.Key)
	if m.Value == nil {
		f.reject(f.rejected[ErrUnsigned], m, "fleet: ignored a tombstone (null value): tombstones are not signed", nil, "key", key)
		if validDigest(m.Key) {
			f.fn(key, nil, nil, m.Timestamp)
		}
		return
	}
	v, err := f.keys.decode(m.Key, m.Value)
	if errors.Is(err, errOldKey) {
		f.reject(f.oldKey, m, "fleet: ignored a verdict signed by a retired key (produced before the key rotation)", nil, "hash", key)
		return
	}
	if err != nil {
		for e, c := range f.rejected {
			if errors.Is(err, e) {
				f.reject(c, m, "fleet: ignored a verdict that does not verify", err)
			}
		}
		return
	}
	if !f.fn(key, &v, m.Value, m.Timestamp) {
		f.reject(f.stale, m, "fleet: ignored a verdict older than the one held for its hash (a replay)", nil, "hash", key, "looked_up", v.LookedUp)
		return
	}
	f.ok.Inc()
}

// reject counts a message in c and logs it when c's count before is a
// multiple of 1000 (the first, then every 1000th).
func (f *follower) reject(c *metrics.Counter, m *sarama.ConsumerMessage, msg string, err error, attrs ...any) {
	if n := c.Value(); n%1000 == 0 {
		attrs = append(attrs, "partition", m.Partition, "offset", m.Offset, "count_before", n)
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		f.log.Warn(msg, attrs...)
	}
	c.Inc()
}

// reach waits until every verdict acknowledged by the brokers before it
// was called has been handed to the callback: it takes each partition's
// high-water mark and waits until the messages below it were read (or no
// longer exist). It returns ctx's error when ctx ends first.
func (f *follower) reach(ctx context.Context) error {
	want := make(map[int32]int64, len(f.next))
	for p := range f.next {
		hwm, err := f.client.GetOffset(f.topic, p, sarama.OffsetNewest)
		var oldest int64
		if err == nil {
			oldest, err = f.client.GetOffset(f.topic, p, sarama.OffsetOldest)
		}
		if err != nil {
			return fmt.Errorf("fleet: verdicts topic %s partition %d: %w", f.topic, p, err)
		}
		if oldest < hwm {
			want[p] = hwm
		}
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		for p, hwm := range want {
			if f.next[p].Load() >= hwm {
				delete(want, p)
			}
		}
		if len(want) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// close stops reading and waits for the partition goroutines.
func (f *follower) close() {
	for _, pc := range f.pcs {
		pc.AsyncClose()
	}
	f.wg.Wait()
	if f.cons != nil {
		_ = f.cons.Close()
	}
}
