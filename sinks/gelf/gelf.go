// Package gelf is the GELF sink: it sends each document as one GELF 1.1
// message to a Graylog GELF input over udp (plain or gzip or zlib
// compressed, chunked when larger than a datagram, several datagrams per
// sendmmsg(2) call), tcp (NUL-terminated frames) or tls.
//
// The document (JSON, either profile) is flattened into "_"-prefixed
// additional fields by the rule in encode.go; short_message comes from a
// template, level from the event severity (syslog levels), host from the
// event's node or the configured host, timestamp from @timestamp.
//
// GELF has no acknowledgement: a message counts as delivered once the
// kernel accepted the write. Over udp a message may be lost without any
// error (a down receiver shows only as ICMP errors on later writes, which
// make the sink reconnect); use tcp or tls where every event matters.
package gelf

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/netconn"
	"github.com/audisp-enrich/audisp-enrich/sinks/syslog"
)

// GELF chunking (GELF 1.1): a chunk is the magic bytes 0x1e 0x0f, an
// 8-byte message id, the sequence number and the sequence count, then
// the data; a message has at most 128 chunks.
const (
	chunkHeader = 12
	maxChunks   = 128
)

// Sink sends messages to one GELF input. It implements sinks.Sink; like
// every sink it is driven by one runner goroutine and its methods must not
// be called concurrently.
type Sink struct {
	name   string
	cfg    Config
	tlsCfg *tls.Config
	log    *slog.Logger
	enc    *encoder

	link  netconn.Link
	q     datagramQueue
	zbuf  bytes.Buffer
	gz    *gzip.Writer
	zl    *zlib.Writer
	frame []byte
	msgID uint64

	sent, bytes, chunks, truncated, bad *metrics.Counter
}

var _ sinks.Sink = (*Sink)(nil)

// New validates cfg (filling in defaults), loads the TLS files and returns
// an unconnected sink. Its metrics (label sink="NAME") are registered in
// reg (nil: metrics.Default); a sink of the same name continues them.
func New(name string, cfg Config, reg *metrics.Registry) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	t, err := parseTemplate(cfg.ShortMessage)
	if err != nil {
		return nil, fmt.Errorf("sink %s: gelf: %w", name, err)
	}
	s := &Sink{
		name:  name,
		cfg:   cfg,
		log:   slog.With("sink", name, "transport", cfg.Transport, "address", cfg.Address),
		enc:   newEncoder(t, cfg.Host),
		msgID: rand.Uint64(),
	}
	if cfg.Transport == "tls" {
		// An empty server name is left to the dialer: the host of address.
		if s.tlsCfg, err = sinks.ClientTLS(cfg.TLSFiles, false); err != nil {
			return nil, fmt.Errorf("sink %s: gelf: %w", name, err)
		}
	}
	switch cfg.Compression {
	case "gzip", "auto":
		s.gz, _ = gzip.NewWriterLevel(&s.zbuf, gzip.BestSpeed)
	case "zlib":
		s.zl, _ = zlib.NewWriterLevel(&s.zbuf, zlib.BestSpeed)
	}
	if reg == nil {
		reg = metrics.Default
	}
	l := metrics.Label("sink", name)
	s.sent = reg.Counter("audisp_enrich_gelf_messages_sent_total", l, "GELF messages written.")
	s.bytes = reg.Counter("audisp_enrich_gelf_bytes_sent_total", l, "GELF bytes written (compressed, chunk headers and framing included).")
	s.chunks = reg.Counter("audisp_enrich_gelf_chunks_sent_total", l, "GELF UDP chunks written (messages sent in more than one datagram).")
	s.truncated = reg.Counter("audisp_enrich_gelf_messages_truncated_total", l, "GELF messages cut to fit 128 UDP chunks (marked _truncated).")
	s.bad = reg.Counter("audisp_enrich_gelf_bad_documents_total", l, "Documents that were not one JSON object and were dropped.")
	s.link = netconn.Link{
		Name: name, Transport: cfg.Transport, Address: cfg.Address, TLS: s.tlsCfg, Timeout: cfg.WriteTimeout, Log: s.log,
		Errs:     reg.Counter("audisp_enrich_gelf_write_errors_total", l, "Failed GELF dials and writes."),
		Connects: reg.Counter("audisp_enrich_gelf_connects_total", l, "Successful GELF connects."),
	}
	return s, nil
}

// Name returns the sink name given to New.
func (s *Sink) Name() string { return s.name }

// Connect dials (closing any previous connection). For tls the
// handshake is done here, so certificate errors surface from Connect.
func (s *Sink) Connect(ctx context.Context) error { return s.link.Connect(ctx) }

// Write sends each message of the batch, in order. It returns nil when
// all were written (a document that is not a JSON object is counted,
// logged and skipped: retrying it would not help), and otherwise an error
// wrapping sinks.ErrNotConnected (a *sinks.PartialError when some were
// written first); the connection is then closed and the runner must
// Connect again. Each write is bounded by write_timeout and by ctx.
//
// Over udp the datagrams of up to udpBatch messages' worth go to the
// kernel in one sendmmsg(2) call; nothing waits for more messages than
// the batch holds, so batching adds no delay.
func (s *Sink) Write(ctx context.Context, batch []sinks.Message) error {
	if s.cfg.Transport == "udp" {
		return s.link.WriteAll(ctx, batch, s.writeUDP)
	}
	return s.link.Write(ctx, batch, s.writeStream)
}

// writeStream sends one message over tcp or tls, NUL-terminated.
func (s *Sink) writeStream(ctx context.Context, conn *netconn.Conn, m *sinks.Message) error {
	msg, ok := s.encode(m)
	if !ok {
		return nil
	}
	s.frame = append(append(s.frame[:0], msg...), 0)
	n, err := conn.Write(ctx, s.frame)
	if err != nil {
		return err
	}
	s.sent.Inc()
	s.bytes.Add(uint64(n))
	return nil
}

// encode returns m's GELF message (valid until the next call), or false
// for a document that is not one JSON object (counted and logged).
func (s *Sink) encode(m *sinks.Message) ([]byte, bool) {
	msg, _, err := s.enc.encode(m.Value, m.Meta.Node, syslog.MapSeverity(m.Meta.Severity), -1)
	if err != nil {
		s.bad.Inc()
		s.log.Error("gelf: document dropped: not one JSON object", "seq", m.Seq, "bytes", len(m.Value), "err", err)
		return nil, false
	}
	return msg, true
}

// autoPlainChunks is the most datagrams compression "auto" sends a
// message in uncompressed; a larger message is gzip-compressed. Sending
// a second datagram costs the sender a fraction of what compressing a
// message of one or two kilobytes does (docs/performance.md).
const autoPlainChunks = 2

// udpBatch is how many datagrams are queued before they are sent with
// one system call.
const udpBatch = 64

// writeUDP turns the messages of batch into datagrams (compressed,
// truncated or chunked as needed), queues them and sends the queue with
// sendmmsg(2) whenever it holds udpBatch datagrams, and at the end. It
// returns how many messages, from the first, were sent whole.
func (s *Sink) writeUDP(ctx context.Context, conn *netconn.Conn, batch []sinks.Message) (int, error) {
	s.q.reset()
	flushed := 0 // messages before s.q's first are sent
	flush := func() error {
		n, err := conn.WriteDatagrams(ctx, s.q.datagrams())
		msgs, bytes, chunks := s.q.sent(n)
		flushed += msgs
		s.sent.Add(uint64(msgs))
		s.bytes.Add(uint64(bytes))
		s.chunks.Add(uint64(chunks))
		s.q.reset()
		return err
	}
	for i := range batch {
		if err := ctx.Err(); err != nil {
			if ferr := flush(); ferr != nil {
				return flushed, ferr
			}
			return flushed, err
		}
		if err := s.queueUDP(&batch[i]); err != nil {
			if ferr := flush(); ferr != nil {
				return flushed, ferr
			}
			return flushed, err
		}
		if s.q.count() >= udpBatch {
			if err := flush(); err != nil {
				return flushed, err
			}
		}
	}
	return flushed, flush()
}

// queueUDP queues m's datagrams: one datagram when the (compressed)
// message fits chunk_size, else its chunks; a message too big for 128
// chunks is truncated first. A document that is not one JSON object
// queues nothing (it counts as sent: retrying it would not help).
func (s *Sink) queueUDP(m *sinks.Message) error {
	msg, ok := s.encode(m)
	if !ok {
		s.q.endMessage(false)
		return nil
	}
	payload := msg
	if s.cfg.Compression != "auto" || len(msg) > autoPlainChunks*(s.cfg.ChunkSize-chunkHeader) {
		payload = s.compress(msg)
	}
	if len(payload) > maxChunks*(s.cfg.ChunkSize-chunkHeader) {
		var err error
		level := syslog.MapSeverity(m.Meta.Severity)
		if payload, err = s.truncate(m, level, len(msg)); err != nil {
			return err
		}
	}
	if len(payload) <= s.cfg.ChunkSize {
		s.q.add(payload)
		s.q.endMessage(false)
		return nil
	}
	data := s.cfg.ChunkSize - chunkHeader
	count := (len(payload) + data - 1) / data
	s.msgID++
	var hdr [chunkHeader]byte
	hdr[0], hdr[1] = 0x1e, 0x0f
	binary.BigEndian.PutUint64(hdr[2:10], s.msgID)
	hdr[11] = byte(count)
	for seq := 0; seq < count; seq++ {
		hdr[10] = byte(seq)
		s.q.add(hdr[:], payload[seq*data:min((seq+1)*data, len(payload))])
	}
	s.q.endMessage(true)
	return nil
}

// compress returns msg compressed as configured (msg itself for none).
// The result is valid until the next call.
func (s *Sink) compress(msg []byte) []byte {
	var w interface {
		io.Writer
		Close() error
		Reset(io.Writer)
	}
	switch {
	case s.gz != nil:
		w = s.gz
	case s.zl != nil:
		w = s.zl
	default:
		return msg
	}
	s.zbuf.Reset()
	w.Reset(&s.zbuf)
	_, _ = w.Write(msg) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	return s.zbuf.Bytes()
}

// truncate rebuilds a message too big for 128 chunks with as many of its
// additional fields as fit (found by bisection), marked with
// _truncated=1 and _original_bytes (the uncompressed size of the whole
// message), and counts it.
func (s *Sink) truncate(m *sinks.Message, level, origBytes int) ([]byte, error) {
	limit := maxChunks * (s.cfg.ChunkSize - chunkHeader)
	_, total, err := s.enc.encode(m.Value, m.Meta.Node, level, 0)
	if err != nil {
		return nil, err
	}
	fits := func(keep int) []byte {
		msg, _, _ := s.enc.encode(m.Value, m.Meta.Node, level, keep)
		msg = append(msg[:len(msg)-1], `,"_truncated":1,"_original_bytes":`...)
		msg = fmt.Appendf(msg, "%d}", origBytes)
		s.enc.out = msg
		if p := s.compress(msg); len(p) <= limit {
			return p
		}
		return nil
	}
	lo, hi := 0, total // fits(lo) is checked last; find the largest keep that fits
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if fits(mid) != nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	p := fits(lo)
	if p == nil {
		return nil, fmt.Errorf("gelf: message of %d bytes does not fit %d chunks even without its fields", origBytes, maxChunks)
	}
	s.truncated.Inc()
	s.log.Warn("gelf message truncated to fit 128 chunks", "seq", m.Seq, "bytes", origBytes, "fields_kept", lo, "fields", total)
	return p, nil
}

// Close closes the connection. The sink can be connected again.
func (s *Sink) Close(context.Context) error {
	s.link.Close()
	return nil
}
