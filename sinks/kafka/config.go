package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// TLSSettings are the TLS keys of a Kafka connection, the sink's and the
// fleet's (enrich/fleet.Conn embeds it too).
type TLSSettings struct {
	// TLS enables TLS to the brokers (system roots unless tls_ca is set).
	TLS bool `toml:"tls"`
	// TLSFiles are tls_ca (CA certificates to verify the brokers with),
	// tls_cert and tls_key (mutual TLS) and tls_server_name (overrides
	// the host name checked in the broker certificate).
	sinks.TLSFiles
	// TLSInsecureSkipVerify disables certificate verification. For tests
	// only; it is logged at warning level on every connect.
	TLSInsecureSkipVerify bool `toml:"tls_insecure_skip_verify"`
}

// validate checks the TLS keys; see sinks.TLSFiles.Validate.
func (t *TLSSettings) validate() error {
	if err := t.TLSFiles.Validate(t.TLS, "tls = true"); err != nil {
		return err
	}
	if !t.TLS && t.TLSInsecureSkipVerify {
		return errors.New("tls_insecure_skip_verify: needs tls = true")
	}
	return nil
}

// Config configures one Kafka sink. The zero value is not usable; start from
// DefaultConfig and call Validate before New.
type Config struct {
	// Brokers lists the bootstrap brokers as host:port. Required.
	Brokers []string `toml:"brokers"`
	// Topic is the destination topic, static ("audit") or a template with
	// the placeholders {node} (the event's node, "unknown" when absent),
	// {type} (the event's first record type) and {kind} ("audit",
	// "verdict", "alert"), e.g. "audit.{node}.{kind}". Placeholder values
	// are sanitised to legal topic characters ([A-Za-z0-9._-], anything else
	// becomes "_") and the result is cut to 249 bytes. Literal parts must
	// already be legal. Templated topics must exist or the brokers must
	// allow automatic topic creation. Default "audit".
	Topic string `toml:"topic"`
	// Key selects the message key, which decides the partition:
	// "node" (default; events of one host stay in order on one partition),
	// "event_id" (the event id read from the JSON document; messages whose
	// value carries no id get no key) or "none" (no key; spread over
	// partitions).
	Key string `toml:"key"`
	// Headers adds record headers describing the event: node, types,
	// keys, techniques (comma-separated), severity (decimal) and kind, each
	// only when non-empty, plus truncated=true on truncated messages.
	// Needs version >= 0.11.0. Default true.
	Headers bool `toml:"headers"`
	// Compression is none, gzip, snappy, lz4 (default) or zstd (needs
	// version >= 2.1.0).
	Compression string `toml:"compression"`
	// Idempotent enables the idempotent producer (no duplicates from the
	// producer's own retries). It needs required_acks = "all" and version
	// >= 0.11.0, and forces one open request per broker connection.
	// Default true.
	Idempotent bool `toml:"idempotent"`
	// RequiredAcks is "all" (default; every in-sync replica), "leader" or
	// "none". Only "all" guarantees that an acknowledged event survives the
	// loss of the leader.
	RequiredAcks string `toml:"required_acks"`
	// MaxMessageBytes bounds one message (value, key and headers). A larger
	// event is sent as a truncated variant: a small JSON document
	// {"truncated":true,"kind":...,"event":{"id":...},"original_bytes":N,
	// "head":"<first bytes>"} with the header truncated=true. It must not
	// exceed the broker's message.max.bytes. Default 1000000.
	MaxMessageBytes int `toml:"max_message_bytes"`
	// ClientID is sent to the brokers. Default "audisp-enrich".
	ClientID string `toml:"client_id"`
	// Version is the oldest Kafka protocol version the brokers speak, e.g.
	// "2.1.0" (default).
	Version string `toml:"version"`
	// DialTimeout bounds connecting to a broker and sending one request.
	// Default 10s.
	DialTimeout time.Duration `toml:"dial_timeout"`
	// WriteTimeout bounds how long one Write waits for the acknowledgements
	// of its batch; what is not acknowledged by then is retried by the
	// runner over a new connection. Default 30s.
	WriteTimeout time.Duration `toml:"write_timeout"`
	// RetryMax is how often the producer itself retries a message before
	// it reports it failed to the runner (which retries it again, forever).
	// Default 5.
	RetryMax int `toml:"retry_max"`
	// RetryBackoff is the first producer retry delay; it doubles per retry
	// up to 2s. Default 100ms.
	RetryBackoff time.Duration `toml:"retry_backoff"`
	// CloseTimeout bounds Close, even when every broker is down; messages
	// not acknowledged by then stay in the sink's buffer. At most 1s.
	// Default 800ms.
	CloseTimeout time.Duration `toml:"close_timeout"`

	// TLSSettings are tls, tls_ca, tls_cert, tls_key, tls_server_name
	// and tls_insecure_skip_verify.
	TLSSettings

	// SASLMechanism is "" (no SASL), "PLAIN", "SCRAM-SHA-256" or
	// "SCRAM-SHA-512". PLAIN sends the password in clear; use it with TLS.
	SASLMechanism string `toml:"sasl_mechanism"`
	// SASLUser and SASLPassword are the SASL credentials, required with a
	// mechanism. The password is never logged or put in an error.
	SASLUser     string `toml:"sasl_user"`
	SASLPassword Secret `toml:"sasl_password"`
}

// Secret is a string that never shows in logs, fmt output or errors.
type Secret string

// String returns a redacted placeholder.
func (Secret) String() string { return "[redacted]" }

// GoString returns a redacted placeholder.
func (Secret) GoString() string { return "[redacted]" }

// LogValue keeps the secret out of slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText keeps the secret out of encoded configuration dumps.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// DefaultConfig returns the defaults documented on Config; Brokers is empty.
func DefaultConfig() Config {
	return Config{
		Topic:           "audit",
		Key:             KeyNode,
		Headers:         true,
		Compression:     "lz4",
		Idempotent:      true,
		RequiredAcks:    "all",
		MaxMessageBytes: 1000000,
		ClientID:        "audisp-enrich",
		Version:         "2.1.0",
		DialTimeout:     10 * time.Second,
		WriteTimeout:    30 * time.Second,
		RetryMax:        5,
		RetryBackoff:    100 * time.Millisecond,
		CloseTimeout:    800 * time.Millisecond,
	}
}

// Message key choices.
const (
	KeyNode    = "node"
	KeyEventID = "event_id"
	KeyNone    = "none"
)

// minMessageBytes leaves room for the truncated variant of an event.
const minMessageBytes = 1024

var compressions = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

var acks = map[string]sarama.RequiredAcks{
	"all":    sarama.WaitForAll,
	"leader": sarama.WaitForLocal,
	"none":   sarama.NoResponse,
}

// Validate checks every option and the combinations sarama would reject,
// and returns all problems joined, each naming its option.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if len(c.Brokers) == 0 {
		bad("brokers: at least one broker is required")
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			bad("brokers: %q is not host:port", b)
		}
	}
	if _, err := parseTopic(c.Topic); err != nil {
		bad("topic: %w", err)
	}
	switch c.Key {
	case KeyNode, KeyEventID, KeyNone:
	default:
		bad("key: %q is not node, event_id or none", c.Key)
	}
	codec, ok := compressions[c.Compression]
	if !ok {
		bad("compression: %q is not none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	ack, ok := acks[c.RequiredAcks]
	if !ok {
		bad("required_acks: %q is not all, leader or none", c.RequiredAcks)
	}
	if c.MaxMessageBytes < minMessageBytes {
		bad("max_message_bytes: %d is below %d", c.MaxMessageBytes, minMessageBytes)
	}
	if c.ClientID == "" {
		bad("client_id: must not be empty")
	}
	version, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		bad("version: %q is not a Kafka version such as 2.1.0", c.Version)
	} else {
		if c.Idempotent && !version.IsAtLeast(sarama.V0_11_0_0) {
			bad("idempotent: needs version >= 0.11.0, have %s", c.Version)
		}
		if c.Headers && !version.IsAtLeast(sarama.V0_11_0_0) {
			bad("headers: need version >= 0.11.0, have %s", c.Version)
		}
		if codec == sarama.CompressionZSTD && !version.IsAtLeast(sarama.V2_1_0_0) {
			bad("compression: zstd needs version >= 2.1.0, have %s", c.Version)
		}
	}
	if c.Idempotent && ack != sarama.WaitForAll {
		bad("idempotent: needs required_acks = \"all\", have %q", c.RequiredAcks)
	}
	if c.Idempotent && c.RetryMax < 1 {
		bad("idempotent: needs retry_max >= 1")
	}
	if c.RetryMax < 0 {
		bad("retry_max: %d is negative", c.RetryMax)
	}
	if c.RetryBackoff < 0 {
		bad("retry_backoff: %s is negative", c.RetryBackoff)
	}
	if c.DialTimeout <= 0 {
		bad("dial_timeout: must be positive")
	}
	if c.WriteTimeout <= 0 {
		bad("write_timeout: must be positive")
	}
	if c.CloseTimeout <= 0 || c.CloseTimeout > time.Second {
		bad("close_timeout: %s is not in (0, 1s]", c.CloseTimeout)
	}
	if err := c.TLSSettings.validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			bad("sasl_mechanism: sasl_user or sasl_password is set but no mechanism")
		}
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		if c.SASLUser == "" || c.SASLPassword == "" {
			bad("sasl_user, sasl_password: both are required with sasl_mechanism %s", c.SASLMechanism)
		}
	default:
		bad("sasl_mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	return errors.Join(errs...)
}

// saramaConfig builds the producer configuration; c must be valid. It reads
// the TLS files, so a missing or bad file is reported here.
func (c *Config) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	sc.Version, _ = sarama.ParseKafkaVersion(c.Version)
	sc.Net.DialTimeout = c.DialTimeout
	sc.Net.WriteTimeout = c.DialTimeout
	sc.Metadata.Full = false
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond

	p := &sc.Producer
	p.Return.Successes = true
	p.Return.Errors = true
	p.Compression = compressions[c.Compression]
	p.RequiredAcks = acks[c.RequiredAcks]
	p.Idempotent = c.Idempotent
	if c.Idempotent {
		sc.Net.MaxOpenRequests = 1
	}
	p.MaxMessageBytes = c.MaxMessageBytes
	p.Retry.Max = c.RetryMax
	// Bounds the producer id request of the idempotent producer, which
	// otherwise retries 50 times when Connect cannot authenticate.
	p.Transaction.Retry.Max = 2
	first := c.RetryBackoff
	p.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		d := first << min(retries, 16)
		return min(d, 2*time.Second)
	}

	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASLMechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASLMechanism)
		sc.Net.SASL.User = c.SASLUser
		sc.Net.SASL.Password = string(c.SASLPassword)
		switch c.SASLMechanism {
		case sarama.SASLTypeSCRAMSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAMClient(scramSHA256) }
		case sarama.SASLTypeSCRAMSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAMClient(scramSHA512) }
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka producer settings: %w", err)
	}
	return sc, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	return sinks.ClientTLS(c.TLSFiles, c.TLSInsecureSkipVerify)
}

// SaramaConfig returns the client configuration the sink would use (TLS,
// SASL, version, timeouts, producer settings) for other Kafka clients of
// the program (the fleet verdict exchange); c must be valid.
func (c *Config) SaramaConfig() (*sarama.Config, error) { return c.saramaConfig() }
