package fleet

import (
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/audisp-enrich/audisp-enrich/sinks/kafka"
)

// Conn is how hosts and the service reach the brokers: the connection
// options of the Kafka sink (see sinks/kafka.Config for each), built and
// validated by the same code.
type Conn struct {
	Brokers     []string      `toml:"brokers"`
	ClientID    string        `toml:"client_id"`
	Version     string        `toml:"version"`
	DialTimeout time.Duration `toml:"dial_timeout"`
	kafka.TLSSettings
	SASLMechanism string       `toml:"sasl_mechanism"`
	SASLUser      string       `toml:"sasl_user"`
	SASLPassword  kafka.Secret `toml:"sasl_password"`
}

// defaultConn returns the Kafka sink's connection defaults.
func defaultConn() Conn {
	d := kafka.DefaultConfig()
	return Conn{ClientID: d.ClientID, Version: d.Version, DialTimeout: d.DialTimeout}
}

func (c *Conn) sinkConfig() kafka.Config {
	k := kafka.DefaultConfig()
	k.Brokers = c.Brokers
	k.ClientID, k.Version, k.DialTimeout = c.ClientID, c.Version, c.DialTimeout
	k.TLSSettings = c.TLSSettings
	k.SASLMechanism, k.SASLUser, k.SASLPassword = c.SASLMechanism, c.SASLUser, c.SASLPassword
	return k
}

// Validate checks the options as the Kafka sink does.
func (c *Conn) Validate() error {
	k := c.sinkConfig()
	return k.Validate()
}

// sarama returns the client configuration: the Kafka sink's (idempotent
// producer, acks=all), plus a consumer that starts at the oldest offset.
func (c *Conn) sarama() (*sarama.Config, error) {
	k := c.sinkConfig()
	if err := k.Validate(); err != nil {
		return nil, err
	}
	sc, err := k.SaramaConfig()
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Metadata.Full = true
	return sc, nil
}
