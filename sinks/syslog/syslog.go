// Package syslog is the syslog sink: it sends each message as one RFC 5424
// or RFC 3164 record over udp, tcp (octet counting or LF framing), tls
// (RFC 5425) or a unix socket.
//
// Syslog has no application-level acknowledgement, so a message counts as
// delivered once the kernel accepted the write. On stream transports a
// reader goroutine watches for the peer closing the connection, so a dead
// collector is noticed before the next batch rather than after it.
package syslog

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/netconn"
)

// Sink sends messages to one syslog collector. It implements sinks.Sink;
// like every sink it is driven by one runner goroutine and its methods must
// not be called concurrently.
type Sink struct {
	name   string
	cfg    Config
	opts   Options
	tlsCfg *tls.Config
	log    *slog.Logger

	link netconn.Link
	buf  []byte

	sent, bytes, truncated *metrics.Counter
}

var _ sinks.Sink = (*Sink)(nil)

// New validates cfg (filling in defaults), loads the TLS files and returns
// an unconnected sink. Its metrics (label sink="NAME") are registered in
// reg (nil: metrics.Default); a sink of the same name continues them.
func New(name string, cfg Config, reg *metrics.Registry) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	s := &Sink{
		name: name,
		cfg:  cfg,
		opts: cfg.Options(strconv.Itoa(os.Getpid())),
		log:  slog.With("sink", name, "transport", cfg.Transport, "address", cfg.Address),
	}
	if cfg.Transport == "tls" {
		tc, err := loadTLS(&cfg)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", name, err)
		}
		s.tlsCfg = tc
	}
	if reg == nil {
		reg = metrics.Default
	}
	l := metrics.Label("sink", name)
	s.sent = reg.Counter("audisp_enrich_syslog_messages_sent_total", l, "Syslog records written.")
	s.bytes = reg.Counter("audisp_enrich_syslog_bytes_sent_total", l, "Syslog bytes written, framing included.")
	s.truncated = reg.Counter("audisp_enrich_syslog_messages_truncated_total", l, "Syslog records cut to max_message_bytes.")
	s.link = netconn.Link{
		Name: name, Transport: cfg.Transport, Address: cfg.Address, TLS: s.tlsCfg, Timeout: cfg.WriteTimeout, Log: s.log,
		Errs:     reg.Counter("audisp_enrich_syslog_write_errors_total", l, "Failed syslog dials and writes."),
		Connects: reg.Counter("audisp_enrich_syslog_connects_total", l, "Successful syslog connects."),
	}
	return s, nil
}

func loadTLS(c *Config) (*tls.Config, error) {
	name := c.TLSServerName
	if name == "" {
		host, _, err := net.SplitHostPort(c.Address)
		if err != nil {
			return nil, fmt.Errorf("syslog: address %q: %w", c.Address, err)
		}
		name = host
	}
	files := c.TLSFiles
	files.TLSServerName = name
	tc, err := sinks.ClientTLS(files, false)
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	return tc, nil
}

// Name returns the sink name given to New.
func (s *Sink) Name() string { return s.name }

// Connect dials (closing any previous connection). For tls the
// handshake is done here, so certificate errors surface from Connect.
func (s *Sink) Connect(ctx context.Context) error { return s.link.Connect(ctx) }

// Write sends each message of the batch as one record, in order. It returns
// nil when all were written, and otherwise an error wrapping
// sinks.ErrNotConnected (a *sinks.PartialError when some were written
// first); the connection is then closed and the runner must Connect again.
// A record lost in a TCP send buffer when the peer dies is not detected:
// syslog has no acknowledgements. Each write is bounded by write_timeout
// and by ctx.
func (s *Sink) Write(ctx context.Context, batch []sinks.Message) error {
	return s.link.Write(ctx, batch, s.writeOne)
}

func (s *Sink) writeOne(ctx context.Context, conn *netconn.Conn, m *sinks.Message) error {
	var trunc bool
	s.buf, trunc = Encode(s.buf[:0], &s.opts, &Record{Time: time.Now(), Meta: m.Meta, Msg: m.Value})
	if trunc {
		s.truncated.Inc()
		s.log.Warn("syslog message truncated", "seq", m.Seq, "bytes", len(m.Value), "max_message_bytes", s.cfg.MaxMessageBytes)
	}
	n, err := conn.Write(ctx, s.buf)
	if err != nil {
		return err
	}
	s.sent.Inc()
	s.bytes.Add(uint64(n))
	return nil
}

// Close closes the connection. The sink can be connected again.
func (s *Sink) Close(context.Context) error {
	s.link.Close()
	return nil
}
