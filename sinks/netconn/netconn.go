// Package netconn is the socket of the sinks that send each message with
// plain writes and get no acknowledgement (syslog, gelf): dialing udp,
// tcp, tls or a unix socket, noticing a stream peer that hung up before
// the next write, and writes bounded by a timeout and by the context.
package netconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Conn is one connection. Its methods must not be called concurrently
// (one runner goroutine drives a sink); a watcher goroutine of its own
// reads a stream connection until the peer closes it.
type Conn struct {
	conn    net.Conn
	closed  chan struct{} // stream transports: closed when the peer hangs up
	timeout time.Duration
}

// Dial connects to address over transport: "udp", "tcp", "tls" (tcp with
// tlsCfg; the handshake is done here, so certificate errors surface
// now), "unix" (a datagram socket such as /dev/log) or "unix_stream".
// timeout bounds dialing and, later, each Write.
func Dial(ctx context.Context, transport, address string, tlsCfg *tls.Config, timeout time.Duration) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	var conn net.Conn
	var err error
	switch transport {
	case "tls":
		td := tls.Dialer{NetDialer: &d, Config: tlsCfg}
		conn, err = td.DialContext(ctx, "tcp", address)
	case "unix":
		conn, err = d.DialContext(ctx, "unixgram", address)
	case "unix_stream":
		conn, err = d.DialContext(ctx, "unix", address)
	default:
		conn, err = d.DialContext(ctx, transport, address)
	}
	if err != nil {
		return nil, err
	}
	c := &Conn{conn: conn, timeout: timeout}
	if transport == "tcp" || transport == "tls" || transport == "unix_stream" {
		c.closed = make(chan struct{})
		go watch(conn, c.closed)
	}
	return c, nil
}

// watch reads (and discards) whatever the peer sends until the connection
// ends, then closes done. The peers of these sinks never send data.
func watch(conn net.Conn, done chan struct{}) {
	_, _ = io.Copy(io.Discard, conn)
	close(done)
}

// errPeerClosed is returned for a stream whose peer hung up.
var errPeerClosed = errors.New("peer closed the connection")

// Each calls send for each message of batch, in order, stopping at the
// first error (or when ctx is done, or when a stream peer has hung up
// before a message). It returns how many messages send took, and the
// error. While it runs, ctx being done interrupts a blocked Write.
func (c *Conn) Each(ctx context.Context, batch []sinks.Message, send func(m *sinks.Message) error) (int, error) {
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	for i := range batch {
		err := ctx.Err()
		if err == nil && c.closed != nil {
			select {
			case <-c.closed:
				err = errPeerClosed
			default:
			}
		}
		if err == nil {
			err = send(&batch[i])
		}
		if err != nil {
			return i, err
		}
	}
	return len(batch), nil
}

// Write writes p with a deadline of the timeout given to Dial, or ctx's
// deadline when that is sooner.
func (c *Conn) Write(ctx context.Context, p []byte) (int, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	return c.conn.Write(p)
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Link is the connection of one sink with the bookkeeping such sinks
// share: dial errors and connects counted, the connection dropped after a
// failed write so that the runner reconnects. Set its fields before the
// first Connect; like the sink, it is driven by one goroutine.
type Link struct {
	Name      string // the sink's name, for errors
	Transport string
	Address   string
	TLS       *tls.Config // transport tls
	Timeout   time.Duration
	Log       *slog.Logger
	// Errs counts failed dials and writes, Connects successful dials.
	Errs, Connects *metrics.Counter

	conn *Conn
}

// Connect dials (closing any previous connection).
func (l *Link) Connect(ctx context.Context) error {
	l.Close()
	conn, err := Dial(ctx, l.Transport, l.Address, l.TLS, l.Timeout)
	if err != nil {
		l.Errs.Inc()
		return fmt.Errorf("sink %s: dial %s %s: %w", l.Name, l.Transport, l.Address, err)
	}
	l.conn = conn
	l.Connects.Inc()
	l.Log.Info("connected")
	return nil
}

// Write calls send for each message of batch in order (see Conn.Each). It
// returns nil when send took them all, and otherwise an error wrapping
// sinks.ErrNotConnected (a *sinks.PartialError when some were sent first),
// after closing the connection; sinks.ErrNotConnected alone when there is
// no connection.
func (l *Link) Write(ctx context.Context, batch []sinks.Message, send func(ctx context.Context, c *Conn, m *sinks.Message) error) error {
	if l.conn == nil {
		return sinks.ErrNotConnected
	}
	c := l.conn
	n, err := c.Each(ctx, batch, func(m *sinks.Message) error { return send(ctx, c, m) })
	if err != nil {
		l.Errs.Inc()
		l.Log.Warn("write failed", "err", err)
		l.Close()
		return sinks.DeliveredFirst(n, fmt.Errorf("sink %s: %w: %w", l.Name, sinks.ErrNotConnected, err))
	}
	return nil
}

// Close closes the connection, if any; Connect may follow.
func (l *Link) Close() {
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn = nil
	}
}
