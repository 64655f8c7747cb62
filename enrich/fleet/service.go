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
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// ServiceConfig configures the verdict service ([verdicts] in TOML); the
// VirusTotal key, budgets, cache and TTLs come from [enrich.virustotal].
type ServiceConfig struct {
	Conn
	// SightingsTopic is consumed in consumer group Group.
	SightingsTopic string `toml:"sightings_topic"`
	// VerdictsTopic receives the signed verdicts (compacted).
	VerdictsTopic string `toml:"verdicts_topic"`
	// Group is the consumer group the service instances share.
	Group string `toml:"group"`
	// SigningKeyFile holds the base64 Ed25519 seed (mode 0600), written by
	// `audisp-enrich verdicts keygen`.
	SigningKeyFile string `toml:"signing_key_file"`
	// RetiredVerdictPublicKeys are the public keys of signing keys
	// rotated out: the service's own follower ignores the verdicts they
	// signed (still on the compacted topic) and counts them as old_key,
	// not as bad_signature. Hosts have the same key.
	RetiredVerdictPublicKeys []string `toml:"retired_verdict_public_keys"`
	// Republish is how long a verdict already on the topic is not produced
	// again for a host that sights its hash (a host whose cache dropped it).
	Republish time.Duration `toml:"republish"`
	// KnownSize bounds the verdicts the service remembers from the topic.
	KnownSize int `toml:"known_size"`
	// Partitions and ReplicationFactor are used when the service (or
	// `verdicts init`) creates a missing topic.
	Partitions        int32 `toml:"partitions"`
	ReplicationFactor int16 `toml:"replication_factor"`
}

// DefaultServiceConfig returns the defaults; Brokers and SigningKeyFile
// are empty.
func DefaultServiceConfig() ServiceConfig {
	return ServiceConfig{Conn: defaultConn(), SightingsTopic: DefaultSightingsTopic, VerdictsTopic: DefaultVerdictsTopic,
		Group: "audisp-enrich-verdicts", Republish: time.Hour, KnownSize: 1 << 20, Partitions: 12, ReplicationFactor: 3}
}

// Validate checks the options without touching files or the network.
func (c *ServiceConfig) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("verdicts: "+f, a...)) }
	if err := c.Conn.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("verdicts: %w", err))
	}
	if c.SightingsTopic == "" || c.VerdictsTopic == "" || c.SightingsTopic == c.VerdictsTopic {
		bad("sightings_topic and verdicts_topic must be set and differ")
	}
	if c.Group == "" {
		bad("group must be set")
	}
	if c.SigningKeyFile == "" {
		bad("signing_key_file must be set")
	}
	if _, err := retiredKeys(c.RetiredVerdictPublicKeys); err != nil {
		bad("%w", err)
	}
	if c.Republish <= 0 || c.KnownSize <= 0 || c.Partitions <= 0 || c.ReplicationFactor <= 0 {
		bad("republish, known_size, partitions and replication_factor must be > 0")
	}
	return errors.Join(errs...)
}

// serviceNode names the service in the verdict documents it asks for.
const serviceNode = "audisp-enrich-verdicts"

// produceBuffer bounds the verdicts waiting for the producer.
const produceBuffer = 4096

// maxWeight caps a hand-off sighting's count as a queue weight.
const maxWeight = 1 << 20

// Service turns sightings into VirusTotal lookups and signed verdicts. It
// is the only process that needs the VirusTotal key.
//
// Guarantees: a hash is looked up at most once per TTL across the
// instances: an instance looks a hash up only while it owns the hash's
// sightings partition, hands its queue back to the group as sightings at
// every session boundary (see Setup and Cleanup), and knows every verdict
// on the topic before a session starts (its cache in vt.db covers its own
// earlier lookups). The exception is a lookup on the wire when its
// instance is killed: the next owner looks the hash up again. A
// sighting's offset is committed once its hash is queued in vt.db or
// answered, so a crash loses no request (the persisted queue survives
// restarts and is handed off at the next session start); verdicts
// that could not be produced are produced again on the next sighting of
// their hash from the cache, without a new lookup. error and skipped
// outcomes are not published: hosts sight the hash again after their
// interval.
type Service struct {
	cfg  ServiceConfig
	vtc  virustotal.Config
	log  *slog.Logger
	priv ed25519.PrivateKey
	loc  Local

	client sarama.Client
	prod   sarama.AsyncProducer
	feed   *feeder
	group  sarama.ConsumerGroup
	vt     *virustotal.Enricher
	fol    *follower
	known  *lru.Cache[string, known]
	// sighted holds the recent (hash, host) pairs: a hash's queue weight
	// counts distinct hosts (weight).
	sighted *lru.Cache[string, struct{}]

	lagMu sync.Mutex
	lag   map[int32]int64

	partMu sync.Mutex
	part   map[string]int32 // queued hash -> the sightings partition it was consumed from
	owned  atomic.Int64     // sightings partitions claimed in the current session

	m       serviceStats
	wg      sync.WaitGroup
	stop    chan struct{}  // closed by Close: Run ends its session
	running sync.WaitGroup // Run, until its last session was released
	closeMu sync.Once
}

// known is a verdict on the topic: when it expires, its message value and
// when it was produced.
type known struct {
	exp      time.Time
	lookedUp int64
	raw      []byte
	sent     time.Time
}

type serviceStats struct {
	sightings  map[string]*metrics.Counter // by result
	produced   *metrics.Counter
	produceErr *metrics.Counter
	handedOff  *metrics.Counter
	handoffErr *metrics.Counter
}

var sightingResults = []string{"queued", "cached", "known", "republished", "unpublishable", "malformed", "local"}

// boundaryWait bounds what a session boundary waits for: reading the
// verdicts topic up to its end at the start of a session, and the
// acknowledgement of the verdicts and handed-off sightings at its end.
const boundaryWait = 15 * time.Second

// NewService reads the signing key, connects, creates missing topics,
// starts the VirusTotal enricher (vtc must be enabled, with a key) and
// starts following the verdicts topic. Run consumes sightings. loc's
// judges are asked before any lookup (see Local); the caller closes them
// after the service.
func NewService(cfg ServiceConfig, vtc virustotal.Config, loc Local, log *slog.Logger, reg *metrics.Registry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !vtc.Enabled {
		return nil, errors.New("verdicts: [enrich.virustotal] must be enabled with the API key: the service does the lookups")
	}
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = metrics.Default
	}
	s := &Service{cfg: cfg, vtc: vtc, loc: loc, log: log.With("service", "verdicts"), lag: map[int32]int64{}, part: map[string]int32{}, stop: make(chan struct{})}
	var err error
	if s.priv, err = ReadPrivateKey(cfg.SigningKeyFile); err != nil {
		return nil, err
	}
	if s.known, err = lru.New[string, known](cfg.KnownSize); err != nil {
		return nil, err
	}
	if s.sighted, err = lru.New[string, struct{}](cfg.KnownSize); err != nil {
		return nil, err
	}
	s.m.sightings = map[string]*metrics.Counter{}
	for _, r := range sightingResults {
		s.m.sightings[r] = reg.Counter("audisp_enrich_fleet_sightings_total", metrics.Label("result", r), "Sightings consumed, by what the service did.")
	}
	s.m.produced = reg.Counter("audisp_enrich_fleet_verdicts_produced_total", "", "Verdicts acknowledged by the brokers.")
	s.m.produceErr = reg.Counter("audisp_enrich_fleet_verdicts_produce_errors_total", "", "Verdicts not produced (buffer full or refused); produced again on the next sighting.")
	s.m.handedOff = reg.Counter("audisp_enrich_fleet_handed_off_total", "", "Queued hashes handed back to the consumer group as sightings at a session boundary.")
	s.m.handoffErr = reg.Counter("audisp_enrich_fleet_handoff_errors_total", "", "Hand-off sightings not produced; the hash stays queued here and is handed off at the next session boundary.")
	reg.Func("audisp_enrich_fleet_partitions", "", "Sightings partitions this instance owns in the consumer group.",
		func() float64 { return float64(s.owned.Load()) })
	reg.Func("audisp_enrich_fleet_lag", "", "Sightings not yet consumed on the partitions this instance owns.", s.totalLag)

	sc, err := cfg.sarama()
	if err != nil {
		return nil, err
	}
	sc.Producer.Partitioner = func(topic string) sarama.Partitioner {
		return sightingPartitioner{sarama.NewHashPartitioner(topic)}
	}
	if _, err = EnsureTopics(cfg, s.log); err != nil {
		return nil, err
	}
	if s.client, err = sarama.NewClient(cfg.Brokers, sc); err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.prod, err = sarama.NewAsyncProducerFromClient(s.client); err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	s.feed = newFeeder(s.prod, produceBuffer, s.acked, s.failed)
	// Only the service's own key is accepted: a verdict it knows is
	// republished as it is on the topic, so it must carry the current key.
	keys := verdictKeys{accept: []ed25519.PublicKey{s.priv.Public().(ed25519.PublicKey)}}
	if keys.retired, err = retiredKeys(cfg.RetiredVerdictPublicKeys); err != nil {
		return nil, err
	}
	if s.fol, err = startFollower(s.client, cfg.VerdictsTopic, keys, reg, s.log, s.fromTopic); err != nil {
		return nil, err
	}
	// A sighting that comes in before the topic is read would be looked up
	// again; the topic is small (one message per hash after compaction).
	<-s.fol.caughtUp
	// Held until the first session starts: hashes restored from vt.db are
	// handed to the group then, not looked up here (another instance may
	// own them now).
	if s.vt, err = virustotal.NewHeld(vtc, s, s.log, reg); err != nil {
		return nil, err
	}
	if s.group, err = sarama.NewConsumerGroup(cfg.Brokers, cfg.Group, sc); err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	ok = true
	return s, nil
}

// Run consumes the sightings topic in the consumer group until ctx ends
// or Close is called; either way its last session is released (its
// queue handed off, its offsets committed) before the instance leaves the
// group. Call it once.
func (s *Service) Run(ctx context.Context) error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	s.running.Add(1)
	defer s.running.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for err := range s.group.Errors() {
			s.log.Warn("verdicts: consumer group", "err", err)
		}
	}()
	h := groupHandler{s}
	for ctx.Err() == nil {
		if err := s.group.Consume(ctx, []string{s.cfg.SightingsTopic}, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return nil
			}
			s.log.Warn("verdicts: consumer group session ended", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

type groupHandler struct{ s *Service }

// Setup starts a session. Lookups are held between sessions; before they
// resume, the instance reads the verdicts topic up to its current end
// (so every verdict the previous owners of its partitions produced is
// known) and hands off whatever its queue still holds (restored from
// vt.db, or left by a failed hand-off): those hashes come back as
// sightings to whichever instance owns them now.
func (h groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	s := h.s
	ctx, cancel := context.WithTimeout(sess.Context(), boundaryWait)
	defer cancel()
	if err := s.fol.reach(ctx); err != nil {
		s.log.Warn("verdicts: the verdicts topic was not read to its end before the session; a hash whose verdict was not read yet can be looked up again", "err", err)
	}
	s.handOff(ctx)
	s.owned.Store(int64(len(sess.Claims()[s.cfg.SightingsTopic])))
	s.log.Info("verdicts: session started", "generation", sess.GenerationID(), "partitions", sess.Claims()[s.cfg.SightingsTopic])
	s.vt.Resume()
	return nil
}

// Cleanup ends a session (a rebalance, or Run ending): it waits for the
// lookup in flight, hands every queued hash back to the group as a
// sighting, and waits until the brokers acknowledged those sightings and
// the verdicts produced so far. Only then does sarama commit the offsets
// and rejoin, so the next owner of a partition finds each hash either on
// the verdicts topic or in a sighting after the committed offset, and no
// hash is looked up by two instances.
func (h groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	s := h.s
	s.vt.Hold()
	s.log.Info("verdicts: session ended", "generation", sess.GenerationID())
	s.owned.Store(0)
	s.lagMu.Lock()
	clear(s.lag)
	s.lagMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), boundaryWait)
	defer cancel()
	s.handOff(ctx)
	return nil
}

// handOff takes every queued hash out of the held enricher and produces
// it as a sighting (carrying its queue weight as the count), then waits
// for the brokers' acknowledgements. A hash whose sighting cannot be
// produced goes back into the queue, to be handed off at the next
// session boundary.
func (s *Service) handOff(ctx context.Context) {
	ws := s.vt.Withdraw()
	for _, w := range ws {
		sg := Sighting{Algo: w.File.Algo, FirstSeen: time.Now().Unix(), Host: serviceNode, Path: w.File.Path, Count: int64(max(w.Weight, 1))}
		ho := handoff{w: w, partition: s.takePartition(w.File.Hex)}
		msg := &sarama.ProducerMessage{Topic: s.cfg.SightingsTopic, Key: sarama.StringEncoder(w.File.Hex),
			Value: sarama.ByteEncoder(EncodeSighting(sg)), Metadata: ho}
		if !s.feed.offer(msg) {
			s.requeue(ho)
		}
	}
	if err := s.feed.flush(ctx); err != nil {
		s.log.Warn("verdicts: the brokers did not acknowledge every verdict and hand-off in time", "err", err)
	}
	if len(ws) > 0 {
		s.log.Info("verdicts: handed queued hashes back to the consumer group", "count", len(ws))
	}
}

// requeue puts a hash whose hand-off failed back into the local queue.
func (s *Service) requeue(ho handoff) {
	s.m.handoffErr.Inc()
	if ho.partition >= 0 {
		s.setPartition(ho.w.File.Hex, ho.partition)
	}
	s.vt.Request(ho.w.File, audit.EventID{Node: serviceNode, Sec: time.Now().Unix()}, ho.w.Weight)
}

// handoff is the Metadata of a hand-off sighting: the hash withdrawn from
// the queue and the sightings partition it was queued from (-1: unknown,
// restored from vt.db).
type handoff struct {
	w         virustotal.Withdrawn
	partition int32
}

// sightingPartitioner sends a hand-off sighting back to the partition its
// hash was consumed from, whatever partitioner the hosts' clients use (the
// hash's owner is the owner of that partition), and every other message
// (verdicts, hand-offs of hashes restored from vt.db) by the key's hash
// as the hosts' sarama producers do.
type sightingPartitioner struct{ sarama.Partitioner }

func (p sightingPartitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if ho, ok := m.Metadata.(handoff); ok && ho.partition >= 0 && ho.partition < n {
		return ho.partition, nil
	}
	return p.Partitioner.Partition(m, n)
}

// setPartition remembers the sightings partition a queued hash came from.
func (s *Service) setPartition(hash string, p int32) {
	s.partMu.Lock()
	s.part[hash] = p
	s.partMu.Unlock()
}

// takePartition forgets and returns the partition a queued hash came
// from, or -1.
func (s *Service) takePartition(hash string) int32 {
	s.partMu.Lock()
	defer s.partMu.Unlock()
	p, ok := s.part[hash]
	if !ok {
		return -1
	}
	delete(s.part, hash)
	return p
}

func (h groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.s.sighting(m)
			sess.MarkMessage(m, "")
			h.s.lagMu.Lock()
			h.s.lag[m.Partition] = max(claim.HighWaterMarkOffset()-m.Offset-1, 0)
			h.s.lagMu.Unlock()
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (s *Service) totalLag() float64 {
	s.lagMu.Lock()
	defer s.lagMu.Unlock()
	var n int64
	for _, l := range s.lag {
		n += l
	}
	return float64(n)
}

// sighting handles one sightings-topic message.
func (s *Service) sighting(m *sarama.ConsumerMessage) {
	sg, err := DecodeSighting(m.Key, m.Value)
	if err != nil {
		if n := s.m.sightings["malformed"].Value(); n%1000 == 0 {
			s.log.Warn("verdicts: ignored a malformed sighting", "partition", m.Partition, "offset", m.Offset, "err", err, "count_before", n)
		}
		s.m.sightings["malformed"].Inc()
		return
	}
	key := string(m.Key)
	now := time.Now()
	if k, ok := s.known.Get(key); ok && k.exp.After(now) {
		if now.Sub(k.sent) < s.cfg.Republish {
			s.m.sightings["known"].Inc()
			return
		}
		k.sent = now
		s.known.Add(key, k)
		s.produce(key, k.raw)
		s.m.sightings["republished"].Inc()
		return
	}
	if v, ok := s.loc.judge(key, sg, s.vtc.TTLClean); ok {
		raw := EncodeVerdict(key, v, s.priv)
		s.known.Add(key, known{exp: v.Expires(), lookedUp: v.LookedUp, raw: raw, sent: now})
		s.produce(key, raw)
		s.m.sightings["local"].Inc()
		return
	}
	fh := audit.FileHash{Path: sg.Path, Algo: sg.Algo, Hex: key}
	res, exp := s.vt.Request(fh, audit.EventID{Node: serviceNode, Sec: now.Unix()}, s.weight(key, sg))
	if res == nil {
		s.setPartition(key, m.Partition)
		s.m.sightings["queued"].Inc()
		return
	}
	if s.publish(key, res, exp) {
		s.m.sightings["cached"].Inc()
	} else {
		s.m.sightings["unpublishable"].Inc()
	}
}

// weight is a sighting's queue weight: 1 for a host's first sighting of
// the hash (as far as the last known_size (hash, host) pairs tell) and 0
// for its repeats, whatever count it claims, so that a hash's priority is
// the number of distinct hosts that sighted it and one host cannot
// outweigh the fleet's queued hashes. A hand-off sighting (host
// serviceNode) carries the weight an instance gathered, up to maxWeight.
func (s *Service) weight(key string, sg Sighting) int {
	if sg.Host == serviceNode {
		return int(min(max(sg.Count, 1), maxWeight))
	}
	if seen, _ := s.sighted.ContainsOrAdd(key+"\x00"+sg.Host, struct{}{}); seen {
		return 0
	}
	return 1
}

// Emit receives the VirusTotal enricher's verdict documents (from its
// worker goroutine) and publishes them.
func (s *Service) Emit(doc *audit.Event) {
	res := doc.VirusTotal
	if res == nil || doc.Kind != audit.KindVerdict {
		return
	}
	s.takePartition(res.Hash)
	s.log.Debug("verdicts: looked up", "hash", res.Hash, "status", res.Status)
	if !s.publish(res.Hash, res, time.Now().Add(s.vtc.TTL(res))) {
		s.log.Info("verdicts: lookup settled without a publishable verdict; hosts will sight the hash again",
			"hash", res.Hash, "status", res.Status, "reason", res.Reason)
	}
}

// publish signs and produces the verdict for a cached or fresh outcome
// expiring at exp. It returns false for outcomes that are not cached.
func (s *Service) publish(key string, res *audit.VTResult, exp time.Time) bool {
	ttl := s.vtc.TTL(res)
	if ttl <= 0 {
		return false
	}
	v := VerdictOf(res)
	v.LookedUp = exp.Add(-ttl).Unix()
	v.TTL = int64((ttl + time.Second - 1) / time.Second)
	raw := EncodeVerdict(key, v, s.priv)
	s.known.Add(key, known{exp: exp, lookedUp: v.LookedUp, raw: raw, sent: time.Now()})
	s.produce(key, raw)
	return true
}

// VerdictOf converts a VirusTotal outcome to a verdict (Source
// virustotal); LookedUp and TTL are left to the caller.
func VerdictOf(res *audit.VTResult) Verdict {
	v := Verdict{Status: res.Status, Reason: res.Reason, Source: SourceVirusTotal}
	if d := res.VTVerdict; d != nil {
		v.Malicious, v.Suspicious, v.Harmless, v.Undetected = d.Malicious, d.Suspicious, d.Harmless, d.Undetected
		v.Engines = d.Malicious + d.Suspicious + d.Harmless + d.Undetected
		v.Reputation, v.ThreatLabel, v.MeaningfulName = d.Reputation, d.ThreatLabel, d.MeaningfulName
		v.FirstSubmission, v.LastAnalysis, v.Link = d.FirstSubmission, d.LastAnalysis, d.Link
	}
	return v
}

// produce hands a verdict to the producer without blocking: when its
// buffer is full (brokers away) the verdict is counted and forgotten, so
// the next sighting of the hash produces it again from the cache.
func (s *Service) produce(key string, raw []byte) {
	msg := &sarama.ProducerMessage{Topic: s.cfg.VerdictsTopic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(raw)}
	if !s.feed.offer(msg) {
		s.m.produceErr.Inc()
		s.known.Remove(key)
	}
}

func (s *Service) acked(m *sarama.ProducerMessage) {
	if _, ok := m.Metadata.(handoff); ok {
		s.m.handedOff.Inc()
	} else {
		s.m.produced.Inc()
	}
}

func (s *Service) failed(pe *sarama.ProducerError) {
	if ho, ok := pe.Msg.Metadata.(handoff); ok {
		s.requeue(ho)
		s.log.Warn("verdicts: handing a queued hash back to the consumer group failed; it stays queued here", "hash", ho.w.File.Hex, "err", pe.Err)
		return
	}
	s.m.produceErr.Inc()
	if k, err := pe.Msg.Key.Encode(); err == nil {
		s.known.Remove(string(k))
	}
	s.log.Warn("verdicts: producing a verdict failed; it is produced again on the next sighting", "err", pe.Err)
}

// fromTopic records a verified verdict read back from the topic. A
// verdict looked up before the one known for the key is a replay, and a
// tombstone (nil v) is not signed: for both the known verdict, when still
// live, is produced again so that it stays the key's last value after
// compaction, and it returns false.
func (s *Service) fromTopic(key string, v *Verdict, raw []byte, ts time.Time) bool {
	if k, ok := s.known.Peek(key); ok && (v == nil || k.lookedUp > v.LookedUp) {
		if k.exp.After(time.Now()) {
			s.produce(key, k.raw)
		}
		return false
	}
	if v == nil {
		return false
	}
	s.known.Add(key, known{exp: v.Expires(), lookedUp: v.LookedUp, raw: raw, sent: ts})
	return true
}

// Close ends Run's session (handing the queue off, see Cleanup) and
// leaves the group, then stops the lookups (what is still queued stays in
// vt.db) and the producer (flushing what it holds), in that order.
func (s *Service) Close() error {
	var errs []error
	s.closeMu.Do(func() {
		close(s.stop)
		s.running.Wait()
		if s.group != nil {
			errs = append(errs, s.group.Close())
		}
		if s.vt != nil {
			errs = append(errs, s.vt.Close())
		}
		if s.fol != nil {
			s.fol.close()
		}
		switch {
		case s.feed != nil:
			s.feed.close()
		case s.prod != nil:
			s.prod.AsyncClose()
		}
		s.wg.Wait()
		if s.client != nil {
			errs = append(errs, s.client.Close())
		}
	})
	return errors.Join(errs...)
}

// EnsureTopics creates the sightings topic and the compacted verdicts
// topic when they are missing and returns the names it created. An
// existing verdicts topic whose cleanup.policy is not compact is logged.
func EnsureTopics(cfg ServiceConfig, log *slog.Logger) ([]string, error) {
	sc, err := cfg.sarama()
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("verdicts: %w", err)
	}
	defer admin.Close()
	have, err := admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("verdicts: listing topics: %w", err)
	}
	compact := "compact"
	var created []string
	for _, t := range []struct {
		name string
		cfg  map[string]*string
	}{
		{cfg.SightingsTopic, nil},
		{cfg.VerdictsTopic, map[string]*string{"cleanup.policy": &compact}},
	} {
		if _, ok := have[t.name]; ok {
			continue
		}
		err := admin.CreateTopic(t.name, &sarama.TopicDetail{NumPartitions: cfg.Partitions,
			ReplicationFactor: cfg.ReplicationFactor, ConfigEntries: t.cfg}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return created, fmt.Errorf("verdicts: creating topic %s: %w", t.name, err)
		}
		if err == nil {
			created = append(created, t.name)
			log.Info("verdicts: created topic", "topic", t.name, "partitions", cfg.Partitions)
		}
	}
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: cfg.VerdictsTopic}}, sarama.DescribeConfigsOptions{})
	if err == nil && len(res) == 1 && res[0].ErrorCode != sarama.ErrNoError {
		err = res[0].ErrorCode
	}
	if err != nil {
		log.Warn("verdicts: cannot read the verdicts topic's config", "topic", cfg.VerdictsTopic, "err", err)
	}
	for _, r := range res {
		for _, e := range r.Configs {
			if e.Name == "cleanup.policy" && e.Value != "compact" {
				log.Warn("verdicts: the verdicts topic is not compacted; hosts read every verdict ever produced at start",
					"topic", cfg.VerdictsTopic, "cleanup.policy", e.Value)
			}
		}
	}
	return created, nil
}
