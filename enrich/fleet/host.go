package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
	"github.com/audisp-enrich/audisp-enrich/sinks/kafka"
)

// HostConfig configures a host's side of the fleet exchange. A host needs
// no VirusTotal key: it reads verdicts and writes sightings.
type HostConfig struct {
	// Enabled turns the fleet exchange on in place of [enrich.virustotal].
	Enabled bool `toml:"enabled"`
	Conn
	SightingsTopic string `toml:"sightings_topic"`
	VerdictsTopic  string `toml:"verdicts_topic"`
	// VerdictPublicKey is the service's base64 Ed25519 public key, printed
	// by `audisp-enrich verdicts keygen`. Verdicts that do not verify with
	// it are ignored and counted.
	VerdictPublicKey string `toml:"verdict_public_key"`
	// NextVerdictPublicKeys are more keys whose verdicts are taken (a key
	// rotation: hosts get the new key here before the service switches).
	NextVerdictPublicKeys []string `toml:"next_verdict_public_keys"`
	// RetiredVerdictPublicKeys are keys rotated out: their verdicts are
	// ignored and counted as old_key, not as bad_signature.
	RetiredVerdictPublicKeys []string `toml:"retired_verdict_public_keys"`
	// HostName names the host in its sightings; "" is the system's name.
	HostName string `toml:"host_name"`
	// Interval is the least time between two sightings of one hash.
	Interval time.Duration `toml:"interval"`
	// FetchWait is how long the broker may hold a fetch of the verdicts
	// topic to gather 1 MiB: verdicts reach the host up to FetchWait
	// late, and an idle topic costs one fetch per FetchWait.
	FetchWait time.Duration `toml:"fetch_wait"`
	// CacheSize bounds the verdicts cached (CLOCK, an approximate LRU;
	// 16.8 bytes of memory a verdict, and a hit's details in a file under
	// StateDir, see verdictCache).
	CacheSize int `toml:"cache_size"`
	// Pending bounds the hashes waiting for a verdict; past it, new hashes
	// get virustotal.status skipped, reason queue_full.
	Pending int `toml:"pending"`
	// Buffer bounds the sightings waiting for the brokers (in the spool);
	// past it the oldest are dropped, counted, and their hashes sighted
	// again at the next interval while they stay pending.
	Buffer int `toml:"buffer"`
	// SpoolBytes bounds the spool's size on disk.
	SpoolBytes int64 `toml:"spool_bytes"`
	// StateDir holds the sightings spool (StateDir/spool/fleet-sightings),
	// so that sightings wait on disk while the brokers are away and
	// survive a restart, and the verdict cache's file of hit details (an
	// unlinked file, see recFile). "" keeps the sightings in memory and
	// puts the cache's file in os.TempDir(). Defaults to the global
	// state_dir.
	StateDir string `toml:"state_dir"`
}

// SpoolName names the sightings spool (its directory under the state
// directory, and the sink label of its delivery metrics).
const SpoolName = "fleet-sightings"

// DefaultHostConfig returns the defaults; Brokers and VerdictPublicKey are empty.
func DefaultHostConfig() HostConfig {
	return HostConfig{Conn: defaultConn(), SightingsTopic: DefaultSightingsTopic, VerdictsTopic: DefaultVerdictsTopic,
		Interval: time.Hour, FetchWait: 500 * time.Millisecond, CacheSize: 100000, Pending: 10000, Buffer: 65536, SpoolBytes: 16 << 20}
}

// Validate checks the options without touching the network.
func (c *HostConfig) Validate() error {
	var errs []error
	if err := c.Conn.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.keys(); err != nil {
		errs = append(errs, err)
	}
	if c.SightingsTopic == "" || c.VerdictsTopic == "" {
		errs = append(errs, errors.New("fleet: sightings_topic and verdicts_topic must be set"))
	}
	if c.Interval <= 0 || c.CacheSize <= 0 || c.Pending <= 0 || c.Buffer <= 0 || c.SpoolBytes < 1<<20 {
		errs = append(errs, errors.New("fleet: interval, cache_size, pending and buffer must be > 0, spool_bytes at least 1 MiB"))
	}
	if c.FetchWait < 10*time.Millisecond || c.FetchWait > 10*time.Second {
		errs = append(errs, errors.New("fleet: fetch_wait must be between 10ms and 10s"))
	}
	return errors.Join(errs...)
}

// keys parses the verdict keys: verdict_public_key and the next ones
// accepted, the retired ones counted apart.
func (c *HostConfig) keys() (verdictKeys, error) {
	var k verdictKeys
	for i, s := range append([]string{c.VerdictPublicKey}, c.NextVerdictPublicKeys...) {
		pub, err := ParsePublicKey(s)
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("next_verdict_public_keys[%d]: %w", i-1, err)
			}
			return k, err
		}
		k.accept = append(k.accept, pub)
	}
	var err error
	k.retired, err = retiredKeys(c.RetiredVerdictPublicKeys)
	return k, err
}

// Host is the enricher a host runs instead of virustotal.Enricher when the
// fleet exchange is on. Enrich never blocks on the network: it answers
// from the verdicts read from the topic or marks the event pending (as
// the single-host enricher does) and appends a sighting to a bounded spool
// (the disk buffer of sinks/buffer, delivered by a sinks.Runner over the
// Kafka sink, like any sink's), where it waits while the brokers are away
// and survives a restart. When the verdict arrives, the same verdict
// document as in single-host mode (virustotal.VerdictDocument) goes to the
// Emitter, from the follower's goroutine.
type Host struct {
	cfg  HostConfig
	name string
	log  *slog.Logger
	emit enrich.Emitter

	client sarama.Client
	spool  *sinks.Runner
	fol    *follower
	ready  chan struct{} // closed once connected and the verdicts topic was read
	cache  *verdictCache
	// afterMiss, when set (by tests only), runs between an event's cache
	// miss and its look-up in the pending table.
	afterMiss func(digest string)

	mu       sync.Mutex
	pend     map[string]*pending
	emitting int // verdict documents taken out of pend and not yet handed to the Emitter

	m      hostStats
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

// pending is a hash waiting for its verdict; guarded by Host.mu.
type pending struct {
	file      audit.FileHash
	waiters   []audit.EventID
	extra     int
	firstSeen time.Time
	sighted   time.Time // when the last sighting was handed to the producer; zero: none
	count     int64     // events since the last sighting
}

type hostStats struct {
	cacheHit, cacheMiss *metrics.Counter
	dropped             *metrics.Counter
	docs                *metrics.Counter
	skipped             map[string]*metrics.Counter
}

// NewHost validates cfg and returns at once; in the background it
// connects (retrying while the brokers are away) and reads the verdicts
// topic from the beginning. Hashes met before the topic is read are held
// pending, and sighted only if the topic had no verdict for them.
func NewHost(cfg HostConfig, emit enrich.Emitter, log *slog.Logger, reg *metrics.Registry) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if emit == nil {
		return nil, errors.New("fleet: NewHost needs an Emitter for verdict documents")
	}
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = metrics.Default
	}
	pub, _ := cfg.keys()
	h := &Host{cfg: cfg, name: cfg.HostName, log: log.With("enricher", "fleet"), emit: emit,
		pend: map[string]*pending{}, stop: make(chan struct{}), ready: make(chan struct{})}
	if h.name == "" {
		h.name, _ = os.Hostname()
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = os.TempDir()
	}
	h.cache = newVerdictCache(cfg.CacheSize, dir, h.log, reg.Counter("audisp_enrich_fleet_cache_unstored_total", "",
		"Fleet verdicts not cached because the verdict cache file could not be written (read-only or full file system)."))
	h.m.cacheHit = reg.Counter("audisp_enrich_fleet_cache_total", `result="hit"`, "Fleet verdict cache look-ups by result.")
	h.m.cacheMiss = reg.Counter("audisp_enrich_fleet_cache_total", `result="miss"`, "Fleet verdict cache look-ups by result.")
	h.m.dropped = reg.Counter("audisp_enrich_fleet_sightings_dropped_total", "", "Sightings lost (spool full or damaged, or appended after close); sighted again at the next interval while pending.")
	h.m.docs = reg.Counter("audisp_enrich_vt_verdicts_total", "", "Verdict documents emitted.")
	h.m.skipped = map[string]*metrics.Counter{}
	for _, r := range []string{virustotal.ReasonAllowlisted, virustotal.ReasonPackage, virustotal.ReasonNoHash, virustotal.ReasonQueueFull} {
		h.m.skipped[r] = reg.Counter("audisp_enrich_vt_skipped_total", metrics.Label("reason", r), "Events whose hash was not looked up, by reason.")
	}
	reg.Func("audisp_enrich_fleet_cached", "", "Fleet verdicts in the host's cache.", func() float64 { return float64(h.cache.len()) })
	reg.Func("audisp_enrich_fleet_pending", "", "Hashes waiting for a fleet verdict.", func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(len(h.pend))
	})

	sc, err := cfg.sarama()
	if err != nil {
		return nil, err
	}
	// The follower's fetches ask the broker to wait up to FetchWait for
	// 1 MiB: verdicts arrive in batches instead of one fetch round trip
	// each (BenchmarkHostFollowCPU: 100 verdicts/s cost 5.2 % of a core
	// with sarama's 1 byte, 1.4 % with 1 MiB), at the price of up to
	// FetchWait of added propagation latency.
	sc.Consumer.MaxWaitTime, sc.Consumer.Fetch.Min = cfg.FetchWait, 1<<20
	if h.spool, err = openSpool(cfg, reg, h.log, func(n int) { h.m.dropped.Add(uint64(n)) }); err != nil {
		return nil, err
	}
	reg.Func("audisp_enrich_fleet_sightings_sent_total", "", "Sightings acknowledged by the brokers.",
		func() float64 { return float64(h.spool.Stats().Acked) })
	h.spool.Start()
	h.wg.Add(2)
	go h.connect(sc, pub, reg)
	go h.sweep()
	return h, nil
}

// openSpool opens the sightings spool: a disk buffer under
// cfg.StateDir (a memory one when it is ""), holding at most cfg.Buffer
// sightings and cfg.SpoolBytes bytes (the oldest are dropped past that,
// reported to dropped), delivered to the sightings topic by a Runner over
// the Kafka sink. The digest travels as the message's Meta.Node, which the
// sink's key = "node" turns into the message key (so a hash always lands
// on one partition).
func openSpool(cfg HostConfig, reg *metrics.Registry, log *slog.Logger, dropped func(n int)) (*sinks.Runner, error) {
	kc := cfg.sinkConfig()
	kc.Topic, kc.Key, kc.Headers = cfg.SightingsTopic, kafka.KeyNode, false
	sink, err := kafka.New(SpoolName, kc, reg, log)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	bc := buffer.DefaultConfig()
	bc.MaxEvents, bc.MaxBytes, bc.WhenFull = cfg.Buffer, cfg.SpoolBytes, buffer.DropOldest
	if cfg.StateDir == "" {
		bc.Type = buffer.TypeMemory
	} else {
		bc.Dir = buffer.SpoolDir(cfg.StateDir, SpoolName)
	}
	rc := sinks.DefaultRunnerConfig()
	rc.BackoffMax = 5 * time.Second
	r, err := sinks.NewRunner(sink, rc, buffer.Opener(bc, buffer.Options{Name: SpoolName, Logger: log, Metrics: reg}),
		sinks.RunnerOptions{Metrics: reg, Logger: log, OnDrop: func(_ string, n int, _ string) { dropped(n) }})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return r, nil
}

// connect reaches the brokers (retrying with backoff, so that a host
// starts and enriches while Kafka is away), then starts the follower, and
// closes h.ready once the verdicts topic has been read. h.client and h.fol
// are set before h.ready is closed and are read only after it.
func (h *Host) connect(sc *sarama.Config, pub verdictKeys, reg *metrics.Registry) {
	defer h.wg.Done()
	wait := time.Second
	for {
		err := h.start(sc, pub, reg)
		if err == nil {
			break
		}
		h.log.Warn("fleet: cannot reach the brokers; events go on as pending, retrying", "err", err, "retry_in", wait)
		select {
		case <-h.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	select {
	case <-h.fol.caughtUp:
		close(h.ready)
	case <-h.stop:
	}
}

func (h *Host) start(sc *sarama.Config, pub verdictKeys, reg *metrics.Registry) error {
	client, err := sarama.NewClient(h.cfg.Brokers, sc)
	if err != nil {
		return err
	}
	fol, err := startFollower(client, h.cfg.VerdictsTopic, pub, reg, h.log, h.verdict)
	if err != nil {
		client.Close()
		return err
	}
	h.client, h.fol = client, fol
	return nil
}

// Name returns "virustotal": the host enricher takes that enricher's place
// and fills the same field.
func (h *Host) Name() string { return virustotal.Name }

// Enrich sets ev.VirusTotal for the event's primary hash from the fleet's
// verdicts, or to pending. It never blocks and never returns an error.
// A hash it marks pending gets its verdict document as soon as the
// verdict is cached, however Enrich and the follower interleave.
func (h *Host) Enrich(_ context.Context, ev *audit.Event) error {
	if len(ev.Hashes) == 0 {
		return nil
	}
	fh, reason := virustotal.Choose(ev)
	if reason != "" { // no sighting either: the fleet needs no verdict
		ev.VirusTotal = h.skip(fh.Hex, reason)
		return nil
	}
	now := time.Now()
	if r, ok := h.cache.get(fh.Hex, now); ok {
		h.m.cacheHit.Inc()
		ev.VirusTotal = r
		return nil
	}
	if h.afterMiss != nil {
		h.afterMiss(fh.Hex)
	}
	h.mu.Lock()
	p := h.pend[fh.Hex]
	if p == nil {
		// verdict caches a verdict and takes its pending entry under
		// h.mu: a verdict cached after the look-up above is seen here,
		// and one cached later finds the entry made below.
		if r, ok := h.cache.get(fh.Hex, now); ok {
			h.mu.Unlock()
			h.m.cacheHit.Inc()
			ev.VirusTotal = r
			return nil
		}
	}
	h.m.cacheMiss.Inc()
	if p == nil {
		if len(h.pend) >= h.cfg.Pending {
			h.mu.Unlock()
			ev.VirusTotal = h.skip(fh.Hex, virustotal.ReasonQueueFull)
			return nil
		}
		p = &pending{file: fh, firstSeen: now}
		h.pend[fh.Hex] = p
	}
	if len(p.waiters) < virustotal.MaxWaiters {
		p.waiters = append(p.waiters, ev.ID)
	} else {
		p.extra++
	}
	p.count++
	msg := h.dueLocked(p, now)
	h.mu.Unlock()
	h.send(msg)
	ev.VirusTotal = &audit.VTResult{Status: virustotal.StatusPending, Hash: fh.Hex}
	return nil
}

func (h *Host) skip(hash, reason string) *audit.VTResult {
	h.m.skipped[reason].Inc()
	return &audit.VTResult{Status: virustotal.StatusSkipped, Reason: reason, Hash: hash}
}

// dueLocked returns the sighting of p when one is due (the verdicts topic
// has been read, and none was sent within the interval), or nil. h.mu
// must be held.
func (h *Host) dueLocked(p *pending, now time.Time) *sinks.Message {
	select {
	case <-h.ready:
	default:
		return nil
	}
	if !p.sighted.IsZero() && now.Sub(p.sighted) < h.cfg.Interval {
		return nil
	}
	p.sighted = now
	s := Sighting{Algo: p.file.Algo, FirstSeen: p.firstSeen.Unix(), Host: h.name, Path: p.file.Path, Count: p.count}
	p.count = 0
	return &sinks.Message{Value: EncodeSighting(s), Meta: sinks.Meta{Node: p.file.Hex}}
}

// send appends a sighting to the spool without waiting for the brokers.
// A sighting the spool refuses (closed) is counted and its hash made due
// again.
func (h *Host) send(msg *sinks.Message) {
	if msg == nil {
		return
	}
	if err := h.spool.Append(*msg); err != nil {
		h.m.dropped.Inc()
		h.mu.Lock()
		if p := h.pend[msg.Meta.Node]; p != nil {
			p.sighted = time.Time{}
		}
		h.mu.Unlock()
	}
}

// sweep sends the sightings that are due without a new event: hashes met
// before the verdicts topic was read, and hashes still pending an
// interval after their last sighting (the service could not answer).
func (h *Host) sweep() {
	defer h.wg.Done()
	t := time.NewTicker(min(h.cfg.Interval/4, time.Minute))
	defer t.Stop()
	caught := h.ready
	for {
		select {
		case <-h.stop:
			return
		case <-caught:
			caught = nil
		case <-t.C:
		}
		now := time.Now()
		var due []*sinks.Message
		h.mu.Lock()
		for _, p := range h.pend {
			if m := h.dueLocked(p, now); m != nil {
				due = append(due, m)
			}
		}
		h.mu.Unlock()
		for _, m := range due {
			h.send(m)
		}
	}
}

// verdict takes a verified verdict from the follower: it is cached and,
// when events wait for it, their verdict document is emitted. It returns
// false, changing nothing, for a verdict looked up before the one the
// cache holds for the digest (a replay, see verdictCache.put). A
// tombstone (nil v) changes nothing: it is not signed.
func (h *Host) verdict(key string, v *Verdict, _ []byte, _ time.Time) bool {
	if v == nil {
		return true
	}
	now := time.Now()
	if !now.Before(v.Expires()) {
		return true
	}
	h.mu.Lock()
	p := h.pend[key]
	if !h.cache.put(key, v, p != nil, now) {
		h.mu.Unlock()
		return false
	}
	delete(h.pend, key)
	if p != nil {
		h.emitting++
	}
	h.mu.Unlock()
	if p == nil {
		return true
	}
	if doc := virustotal.VerdictDocument(result(key, v), p.file, p.waiters, p.extra); doc != nil {
		h.m.docs.Inc()
		h.emit.Emit(doc)
	}
	h.mu.Lock()
	h.emitting--
	h.mu.Unlock()
	return true
}

// Settle waits until no hash waits for a verdict (each got its verdict
// document, handed to the Emitter), or until ctx ends. Replay calls it before closing, so that
// the verdicts the fleet can give at once are part of its output.
func (h *Host) Settle(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		n := len(h.pend) + h.emitting
		h.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// result renders a verdict as the event's VirusTotal outcome.
func result(hash string, v *Verdict) *audit.VTResult {
	r := &audit.VTResult{Status: v.Status, Reason: v.Reason, Hash: hash}
	if v.Status == VerdictFound {
		r.VTVerdict = &audit.VTVerdict{Malicious: v.Malicious, Suspicious: v.Suspicious, Harmless: v.Harmless,
			Undetected: v.Undetected, Reputation: v.Reputation, ThreatLabel: v.ThreatLabel,
			MeaningfulName: v.MeaningfulName, FirstSubmission: v.FirstSubmission, LastAnalysis: v.LastAnalysis, Link: v.Link}
	}
	return r
}

// Close stops connecting, following the topic and sweeping, and stops
// the spool's delivery (within about a second when the brokers are away);
// what was not delivered stays in the disk spool for the next start.
func (h *Host) Close() error {
	var errs []error
	h.closed.Do(func() {
		close(h.stop)
		h.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		errs = append(errs, h.spool.Stop(ctx))
		defer h.cache.close() // after the follower, which puts into it
		if h.client == nil {
			return
		}
		h.fol.close()
		errs = append(errs, h.client.Close())
	})
	return errors.Join(errs...)
}
