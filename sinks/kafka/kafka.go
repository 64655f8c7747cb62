// Package kafka is the Kafka sink: it produces encoded events to Kafka
// topics with IBM/sarama's asynchronous producer and reports, per message,
// which ones the brokers acknowledged.
//
// Guarantees: Write returns nil only when every message of the batch was
// acknowledged (with the configured required_acks); otherwise it names the
// acknowledged ones in a *sinks.PartialError and the runner keeps the rest.
// Delivery is at least once: a message may be written twice when an
// acknowledgement is lost or arrives after its Write gave up. Order is kept
// within a batch per partition when idempotent (one request in flight);
// messages retried by the runner arrive after later ones. An event larger
// than max_message_bytes is replaced by a flagged, truncated variant and is
// never dropped.
//
// Wiring: cfg := kafka.DefaultConfig(), decode the sink's TOML table into
// it, cfg.Validate(), then kafka.New(name, cfg, registry, logger) and hand the *Sink to
// the runner. A minimal table:
//
//	brokers = ["10.0.0.5:9093"]
//	topic = "audit.{kind}"
//	tls = true
//	tls_ca = "/etc/audisp-enrich/kafka-ca.pem"
//	sasl_mechanism = "SCRAM-SHA-512"
//	sasl_user = "audisp"
//	sasl_password = "..."
//
// Metrics (label sink="NAME", registered once by New in the caller's
// registry and kept across Close and Connect):
// audisp_enrich_kafka_messages_delivered_total,
// audisp_enrich_kafka_messages_failed_total,
// audisp_enrich_kafka_messages_truncated_total,
// audisp_enrich_kafka_bytes_delivered_total,
// audisp_enrich_kafka_connects_total,
// audisp_enrich_kafka_connect_errors_total.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// truncatedRetryHead bounds the original bytes kept when a broker rejects a
// message as too large even though it fit max_message_bytes.
const truncatedRetryHead = 1024

// Sink produces messages to Kafka. Connect, Write and Close must not be
// called concurrently (the runner never does); Name is always safe.
type Sink struct {
	name string
	cfg  Config
	sc   *sarama.Config
	b    builder
	log  *slog.Logger
	st   stats

	prod *producer // nil before Connect and after Close
}

// producer is one sarama AsyncProducer and the goroutine that drains both of
// its result channels until sarama closes them.
type producer struct {
	ap      sarama.AsyncProducer
	drained chan struct{} // closed once Successes and Errors are closed
	broken  bool          // a Write failed; the next one asks for Connect
}

// ticket travels in ProducerMessage.Metadata: which batch and which index a
// result belongs to.
type ticket struct {
	res chan<- result
	i   int
}

type result struct {
	i   int
	err error
}

type stats struct {
	delivered, failed, truncated, bytes, connects, connectErrs *metrics.Counter
	labels                                                     string
}

// New returns an unconnected Kafka sink named name (used in logs and as the
// sink label of its metrics). cfg must pass Validate; TLS files are read
// here. Metrics are registered in reg (nil: metrics.Default); a sink of the
// same name continues them. log may be nil for slog.Default.
func New(name string, cfg Config, reg *metrics.Registry, log *slog.Logger) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", name, err)
	}
	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", name, err)
	}
	topic, _ := parseTopic(cfg.Topic)
	if log == nil {
		log = slog.Default()
	}
	s := &Sink{
		name: name,
		cfg:  cfg,
		sc:   sc,
		b:    builder{topic: topic, key: cfg.Key, headers: cfg.Headers, maxBytes: cfg.MaxMessageBytes},
		log:  log.With("sink", name, "type", "kafka"),
	}
	s.st.labels = metrics.Label("sink", name)
	r := reg
	if r == nil {
		r = metrics.Default
	}
	s.st.delivered = r.Counter("audisp_enrich_kafka_messages_delivered_total", s.st.labels, "Messages acknowledged by Kafka.")
	s.st.failed = r.Counter("audisp_enrich_kafka_messages_failed_total", s.st.labels, "Message send attempts that failed (the runner retries them).")
	s.st.truncated = r.Counter("audisp_enrich_kafka_messages_truncated_total", s.st.labels, "Messages sent as a truncated variant because they were too large.")
	s.st.bytes = r.Counter("audisp_enrich_kafka_bytes_delivered_total", s.st.labels, "Value bytes acknowledged by Kafka.")
	s.st.connects = r.Counter("audisp_enrich_kafka_connects_total", s.st.labels, "Producers created.")
	s.st.connectErrs = r.Counter("audisp_enrich_kafka_connect_errors_total", s.st.labels, "Failed attempts to create a producer.")
	return s, nil
}

// Name returns the sink's name.
func (s *Sink) Name() string { return s.name }

// Connect creates a producer, replacing (and abandoning, within
// close_timeout) any previous one. It returns an error when no broker can be
// reached; the runner calls it again with backoff. It returns soon after ctx
// is done.
func (s *Sink) Connect(ctx context.Context) error {
	if s.prod != nil {
		_ = s.closeProducer(ctx) // logged there; its messages are retried by the runner
	}
	if s.cfg.TLSInsecureSkipVerify {
		s.log.Warn("kafka TLS certificate verification is disabled (tls_insecure_skip_verify)")
	}
	type made struct {
		p   *producer
		err error
	}
	ch := make(chan made, 1)
	go func() {
		p, err := s.open()
		ch <- made{p, err}
	}()
	var m made
	select {
	case m = <-ch:
	case <-ctx.Done():
		go func() {
			if m := <-ch; m.err == nil {
				m.p.ap.AsyncClose()
			}
		}()
		return ctx.Err()
	}
	if m.err != nil {
		s.st.connectErrs.Inc()
		return fmt.Errorf("kafka sink %s: connect to %v: %w", s.name, s.cfg.Brokers, m.err)
	}
	s.st.connects.Inc()
	s.prod = m.p
	s.log.Info("kafka producer connected", "brokers", s.cfg.Brokers)
	return nil
}

// open checks that a bootstrap broker accepts a connection (with TLS and
// SASL), then starts a producer with the goroutine that drains its results.
func (s *Sink) open() (*producer, error) {
	if err := s.probe(); err != nil {
		return nil, err
	}
	ap, err := sarama.NewAsyncProducer(s.cfg.Brokers, s.sc)
	if err != nil {
		return nil, err
	}
	p := &producer{ap: ap, drained: make(chan struct{})}
	go func() {
		defer close(p.drained)
		drain(ap)
	}()
	return p, nil
}

// probe connects to the bootstrap brokers in turn until one completes the
// connection handshake (TCP, TLS, SASL) and answers a request; sarama itself
// connects lazily and would only fail later, message by message.
func (s *Sink) probe() error {
	var errs []error
	for _, addr := range s.cfg.Brokers {
		b := sarama.NewBroker(addr)
		if err := b.Open(s.sc); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		// Connected reports TCP and SASL failures; a TLS failure only
		// shows on the first request, which ApiVersions is.
		_, err := b.Connected()
		if err == nil {
			_, err = b.ApiVersions(&sarama.ApiVersionsRequest{})
		}
		_ = b.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return errors.Join(errs...)
}

// drain reads both result channels of ap until sarama closes them, handing
// each result to the Write that sent the message. Results of a Write that
// gave up land in its buffered channel and are dropped with it.
func drain(ap sarama.AsyncProducer) {
	succ, errs := ap.Successes(), ap.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			if t, ok := m.Metadata.(ticket); ok {
				t.res <- result{i: t.i}
			}
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if t, ok := e.Msg.Metadata.(ticket); ok {
				t.res <- result{i: t.i, err: e.Err}
			}
		}
	}
}

// Write produces batch and waits until each message is acknowledged or
// failed, or until write_timeout or ctx ends the wait. It returns nil when
// all were acknowledged, a *sinks.PartialError listing the acknowledged
// indexes when some were, an error when none were, and sinks.ErrNotConnected
// when there is no producer or the previous Write failed (a failed producer
// is replaced rather than trusted: sarama's idempotent producer does not
// always recover from a broker outage).
func (s *Sink) Write(ctx context.Context, batch []sinks.Message) error {
	p := s.prod
	if p == nil || p.broken {
		return sinks.ErrNotConnected
	}
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()

	// Every message can have two results (the second after a broker
	// rejected it as too large and it went out again truncated).
	res := make(chan result, 2*len(batch))
	sizes := make([]int, len(batch))
	send := func(i int, force bool, headLimit int) bool {
		pm, truncated := s.b.build(&batch[i], force, headLimit)
		if truncated {
			s.st.truncated.Inc()
			s.log.Warn("kafka message too large, sending a truncated variant",
				"seq", batch[i].Seq, "bytes", len(batch[i].Value), "max_message_bytes", s.cfg.MaxMessageBytes)
		}
		sizes[i] = pm.Value.Length()
		pm.Metadata = ticket{res: res, i: i}
		select {
		case p.ap.Input() <- pm:
			return true
		case <-ctx.Done():
			return false
		}
	}

	pending := 0
	for i := range batch {
		if !send(i, false, 0) {
			break
		}
		pending++
	}
	delivered := make([]int, 0, len(batch))
	retriedSmall := map[int]bool{}
	var firstErr error
	failed := 0
wait:
	for pending > 0 {
		select {
		case r := <-res:
			pending--
			switch {
			case r.err == nil:
				delivered = append(delivered, r.i)
				s.st.bytes.Add(uint64(sizes[r.i]))
			case errors.Is(r.err, sarama.ErrMessageSizeTooLarge) && !retriedSmall[r.i]:
				// The broker's limit is below ours: send the small
				// truncated variant instead of failing forever.
				retriedSmall[r.i] = true
				if send(r.i, true, truncatedRetryHead) {
					pending++
				}
			default:
				failed++
				if firstErr == nil {
					firstErr = r.err
				}
			}
		case <-ctx.Done():
			break wait
		}
	}
	s.st.delivered.Add(uint64(len(delivered)))
	if len(delivered) == len(batch) {
		return nil
	}
	s.st.failed.Add(uint64(len(batch) - len(delivered)))
	p.broken = true
	cause := firstErr
	if cause == nil {
		cause = fmt.Errorf("no acknowledgement in time: %w", ctx.Err())
	}
	s.log.Warn("kafka write incomplete; the runner retries the rest over a new producer",
		"batch", len(batch), "delivered", len(delivered), "failed", failed, "error", cause)
	if len(delivered) == 0 {
		return fmt.Errorf("kafka sink %s: none of %d messages delivered: %w", s.name, len(batch), cause)
	}
	return &sinks.PartialError{Delivered: delivered, Err: fmt.Errorf("kafka sink %s: %w", s.name, cause)}
}

// Close shuts the producer down. It returns within close_timeout (at most
// 1 s) even when every broker is down; then it returns an error and the
// producer is abandoned, finishing in the background. Messages not yet
// acknowledged stay in the runner's buffer. Connect may follow (the runner
// closes a sink that lost its connection and connects it again); the
// metrics stay registered.
func (s *Sink) Close(ctx context.Context) error {
	if s.prod == nil {
		return nil
	}
	return s.closeProducer(ctx)
}

// closeProducer starts closing the current producer and waits at most
// close_timeout (or until ctx is done) for sarama to finish.
func (s *Sink) closeProducer(ctx context.Context) error {
	p := s.prod
	s.prod = nil
	p.ap.AsyncClose()
	t := time.NewTimer(s.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-p.drained:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	s.log.Warn("kafka producer did not shut down in time; abandoning it, unacknowledged messages stay buffered",
		"close_timeout", s.cfg.CloseTimeout)
	return fmt.Errorf("kafka sink %s: producer did not shut down within %s", s.name, s.cfg.CloseTimeout)
}

// Interface guard.
var _ sinks.Sink = (*Sink)(nil)
