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

	"golang.org/x/net/ipv4"

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
	batch   *ipv4.PacketConn // udp: sendmmsg(2) for WriteDatagrams
	msgs    []ipv4.Message
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
	if uc, ok := conn.(*net.UDPConn); ok {
		c.batch = ipv4.NewPacketConn(uc)
	}
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
// error.
func (c *Conn) Each(ctx context.Context, batch []sinks.Message, send func(m *sinks.Message) error) (int, error) {
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

// WriteDatagrams sends each element of dgrams as one datagram, in order,
// with as few sendmmsg(2) calls as the kernel allows (one system call
// for up to len(dgrams) datagrams instead of one each), all under one
// deadline as for Write. It returns how many datagrams were sent: all of
// them when the error is nil, the ones before the failure otherwise. Only
// for udp connections; others get an error.
func (c *Conn) WriteDatagrams(ctx context.Context, dgrams [][]byte) (int, error) {
	if c.batch == nil {
		return 0, errors.New("netconn: WriteDatagrams on a connection that is not udp")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	if cap(c.msgs) < len(dgrams) {
		c.msgs = make([]ipv4.Message, len(dgrams))
		for i := range c.msgs {
			c.msgs[i].Buffers = make([][]byte, 1)
		}
	}
	msgs := c.msgs[:len(dgrams)]
	for i, d := range dgrams {
		msgs[i].Buffers[0] = d
	}
	sent := 0
	for sent < len(msgs) {
		n, err := c.batch.WriteBatch(msgs[sent:], 0)
		sent += n
		if err != nil {
			return sent, err
		}
		if n == 0 { // not expected from sendmmsg without an error; do not spin
			return sent, io.ErrShortWrite
		}
	}
	for i := range msgs {
		msgs[i].Buffers[0] = nil // do not keep the caller's bytes reachable
	}
	return sent, nil
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
	return l.WriteAll(ctx, batch, func(ctx context.Context, c *Conn, batch []sinks.Message) (int, error) {
		return c.Each(ctx, batch, func(m *sinks.Message) error { return send(ctx, c, m) })
	})
}

// WriteAll is Write for a sink that sends a batch its own way (several
// messages per system call): write returns how many messages of batch,
// from the first, were delivered, and the error that stopped it. The
// errors and the reconnect are those of Write. While write runs, ctx
// being done interrupts a blocked write on the connection.
func (l *Link) WriteAll(ctx context.Context, batch []sinks.Message, write func(ctx context.Context, c *Conn, batch []sinks.Message) (int, error)) error {
	if l.conn == nil {
		return sinks.ErrNotConnected
	}
	c := l.conn
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetWriteDeadline(time.Unix(1, 0)) })
	n, err := write(ctx, c, batch)
	stop()
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
