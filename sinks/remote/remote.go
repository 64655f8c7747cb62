// Package remote is the remote-auditd sink: it speaks the audisp-remote
// "managed" protocol to an auditd that has tcp_listen_port set, so the
// collector logs every record in its own audit.log where ausearch finds it.
//
// Each message value is one or more audit record lines. Every line goes out
// as one MESSAGE frame (payload = the line and its '\n') and the next frame
// is sent only after auditd acknowledged it with a reply of the same
// sequence number, after writing the line to its log. EOE lines are not
// sent, as audisp-remote does not send them. Delivery is at least once: a
// line whose acknowledgement was lost is sent again after reconnecting.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Config configures one remote-auditd sink.
type Config struct {
	// Address is the collector's host:port (its tcp_listen_port).
	Address string `toml:"address"`
	// HeartbeatInterval is how long the connection may stay idle before
	// a HEARTBEAT frame is sent (and must be acknowledged). Keep it below
	// the collector's tcp_client_max_idle. Default 30s; 0 disables.
	HeartbeatInterval time.Duration `toml:"heartbeat_interval"`
	// AckTimeout bounds the wait for the reply to one frame; on expiry the
	// connection is dropped and the line resent. Default 5s (audisp-remote
	// max_time_per_record).
	AckTimeout time.Duration `toml:"ack_timeout"`
	// DialTimeout bounds one connection attempt. Default 5s.
	DialTimeout time.Duration `toml:"dial_timeout"`
	// BackoffMin and BackoffMax bound the wait before connecting again
	// after a failed dial, DISKFULL, DISKERROR, another fatal reply or
	// ENDING. It doubles per failure from BackoffMin up to BackoffMax and
	// is reset by the next acknowledged frame. Defaults 1s and 60s.
	BackoffMin time.Duration `toml:"backoff_min"`
	BackoffMax time.Duration `toml:"backoff_max"`
}

// DefaultConfig returns the defaults documented on Config (Address empty).
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval: 30 * time.Second,
		AckTimeout:        5 * time.Second,
		DialTimeout:       5 * time.Second,
		BackoffMin:        time.Second,
		BackoffMax:        time.Minute,
	}
}

// Validate fills zero durations with their defaults (HeartbeatInterval
// excepted: 0 there means off) and checks the settings. Every problem is
// returned, joined, each naming its key.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.AckTimeout == 0 {
		c.AckTimeout = d.AckTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(d.BackoffMax, c.BackoffMin)
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("audisp: address %q: want host:port: %w", c.Address, err))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"heartbeat_interval", c.HeartbeatInterval}, {"ack_timeout", c.AckTimeout}, {"dial_timeout", c.DialTimeout},
		{"backoff_min", c.BackoffMin}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("audisp: %s %v: must not be negative", d.key, d.v))
		}
	}
	if c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("audisp: backoff_max %v is below backoff_min %v", c.BackoffMax, c.BackoffMin))
	}
	return errors.Join(errs...)
}

// Sink delivers audit record lines to a remote auditd. It implements
// sinks.Sink. Connect, Write and Close are called by one runner goroutine;
// the sink's own heartbeat goroutine shares the connection under a mutex,
// so at most one frame is ever in flight.
type Sink struct {
	name string
	cfg  Config
	log  *slog.Logger

	mu       sync.Mutex // guards everything below and the connection
	cn       *conn
	seq      uint32    // last sequence number used; the first frame gets 2
	failures int       // consecutive failures, for the backoff
	notAfter time.Time // Connect waits until then
	diskLow  bool      // last reply was DISKLOW (logged once per episode)
	buf      []byte
	// A message whose first lines were acknowledged before a failure; when
	// the same message is written again those lines are skipped.
	resumeSeq uint64
	resumeVal []byte
	resumeN   int

	m sinkMetrics
}

type sinkMetrics struct {
	lines, bytes, heartbeats, eoe, truncated, connects           *metrics.Counter
	diskLow, diskFull, diskErr, ending, mismatch, timeouts, errs *metrics.Counter
}

var _ sinks.Sink = (*Sink)(nil)

// conn is one TCP connection with its reader goroutine.
type conn struct {
	c       net.Conn
	replies chan reply    // replies other than ENDING, in arrival order
	done    chan struct{} // closed when the reader stops
	err     error         // why the reader stopped; read after done
	stop    chan struct{} // closed by drop, stops the heartbeat goroutine
	used    time.Time     // when a frame was last sent; guarded by Sink.mu
}

type reply struct {
	h    Header
	text string
}

var errEnding = errors.New("collector sent ENDING (shutting down)")

// New validates cfg and returns an unconnected sink. Its metrics (label
// sink="NAME") are registered in reg (nil: metrics.Default); a sink of the
// same name continues them.
func New(name string, cfg Config, reg *metrics.Registry) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	s := &Sink{name: name, cfg: cfg, seq: 1, log: slog.With("sink", name, "address", cfg.Address)}
	l := metrics.Label("sink", name)
	if reg == nil {
		reg = metrics.Default
	}
	c := func(n, help string) *metrics.Counter { return reg.Counter("audisp_enrich_remote_"+n, l, help) }
	s.m = sinkMetrics{
		lines:      c("lines_acked_total", "Record lines acknowledged by the collector."),
		bytes:      c("bytes_acked_total", "Payload bytes acknowledged by the collector."),
		heartbeats: c("heartbeats_acked_total", "Heartbeats acknowledged."),
		eoe:        c("eoe_skipped_total", "EOE lines not sent."),
		truncated:  c("lines_truncated_total", "Lines cut to the protocol maximum."),
		connects:   c("connects_total", "Successful connects."),
		diskLow:    c("disk_low_total", "DISKLOW replies (the line was logged)."),
		diskFull:   c("disk_full_total", "DISKFULL replies (the line was not logged)."),
		diskErr:    c("disk_error_total", "DISKERROR and other fatal replies."),
		ending:     c("ending_total", "ENDING notices from the collector."),
		mismatch:   c("seq_mismatch_total", "Replies whose sequence did not match."),
		timeouts:   c("ack_timeouts_total", "Frames not acknowledged within ack_timeout."),
		errs:       c("errors_total", "Dial, write and read errors."),
	}
	return s, nil
}

// Name returns the sink name given to New.
func (s *Sink) Name() string { return s.name }

// Connect waits out the current backoff (returning early with ctx's error),
// closes any previous connection and dials the collector.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop()
	if wait := time.Until(s.notAfter); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", s.cfg.Address)
	if err != nil {
		s.m.errs.Inc()
		s.failed()
		return fmt.Errorf("sink %s: dial %s: %w", s.name, s.cfg.Address, err)
	}
	cn := &conn{c: c, replies: make(chan reply, 4), done: make(chan struct{}), stop: make(chan struct{}), used: time.Now()}
	s.cn = cn
	go cn.read(s.log)
	if s.cfg.HeartbeatInterval > 0 {
		go s.heartbeat(cn)
	}
	s.m.connects.Inc()
	s.log.Info("connected to remote auditd")
	return nil
}

// failed extends the backoff after a failure.
func (s *Sink) failed() {
	s.failures++
	d := s.cfg.BackoffMin
	for i := 1; i < s.failures && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.BackoffMax)
	if d > 0 {
		d = d/2 + rand.N(d/2+1) // jitter within [d/2, d]
	}
	s.notAfter = time.Now().Add(d)
}

// read decodes replies until the connection fails or ENDING arrives.
func (cn *conn) read(log *slog.Logger) {
	defer close(cn.done)
	var hb [HeaderSize]byte
	for {
		if _, err := io.ReadFull(cn.c, hb[:]); err != nil {
			cn.err = err
			return
		}
		h, err := DecodeHeader(hb[:])
		if err != nil {
			cn.err = err
			log.Error("bad reply from remote auditd", "err", err)
			return
		}
		text := make([]byte, h.Length)
		if _, err := io.ReadFull(cn.c, text); err != nil {
			cn.err = err
			return
		}
		if h.Type == TypeEnding {
			cn.err = errEnding
			return
		}
		select {
		case cn.replies <- reply{h, string(bytes.TrimRight(text, "\x00"))}:
		default:
			cn.err = fmt.Errorf("unsolicited replies (last %s seq %d)", TypeName(h.Type), h.Seq)
			return
		}
	}
}

// heartbeat sends a HEARTBEAT whenever the connection was idle for
// HeartbeatInterval, until cn is dropped.
func (s *Sink) heartbeat(cn *conn) {
	iv := s.cfg.HeartbeatInterval
	t := time.NewTimer(iv)
	defer t.Stop()
	for {
		select {
		case <-cn.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.cn != cn {
			s.mu.Unlock()
			return
		}
		if !time.Now().Before(cn.used.Add(iv)) {
			if _, err := s.exchange(context.Background(), TypeHeartbeat, nil); err != nil {
				s.log.Warn("heartbeat failed", "err", err)
			} else {
				s.m.heartbeats.Inc()
			}
		}
		next := time.Until(cn.used.Add(iv))
		s.mu.Unlock()
		t.Reset(max(next, time.Millisecond))
	}
}

// exchange sends one frame on s.cn and waits for its reply. The caller
// holds s.mu and s.cn is not nil. It returns the reply when the collector
// logged the frame (ACK, DISKLOW or another warning); otherwise it drops
// the connection and returns why.
func (s *Sink) exchange(ctx context.Context, typ uint32, payload []byte) (reply, error) {
	cn := s.cn
	select {
	case <-cn.done:
		return reply{}, s.lost(cn)
	default:
	}
	s.seq++
	if s.seq == 0 { // 0 is the sequence of unsolicited ENDING notices
		s.seq = 1
	}
	seq := s.seq
	s.buf = Header{Type: typ, Length: uint16(len(payload)), Seq: seq}.Append(s.buf[:0])
	s.buf = append(s.buf, payload...)
	deadline := time.Now().Add(s.cfg.AckTimeout)
	_ = cn.c.SetWriteDeadline(deadline)
	if _, err := cn.c.Write(s.buf); err != nil {
		s.m.errs.Inc()
		s.drop()
		return reply{}, fmt.Errorf("send: %w", err)
	}
	cn.used = time.Now()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-cn.replies:
		return s.handle(r, seq)
	case <-cn.done:
		// The reader may have queued our reply before it stopped (an
		// ACK followed at once by ENDING): take the reply first.
		select {
		case r := <-cn.replies:
			return s.handle(r, seq)
		default:
		}
		return reply{}, s.lost(cn)
	case <-t.C:
		s.m.timeouts.Inc()
		s.drop()
		return reply{}, fmt.Errorf("no reply to seq %d within %v", seq, s.cfg.AckTimeout)
	case <-ctx.Done():
		s.drop()
		return reply{}, ctx.Err()
	}
}

// handle interprets the reply r to the frame with sequence seq.
func (s *Sink) handle(r reply, seq uint32) (reply, error) {
	if r.h.Seq != seq {
		s.m.mismatch.Inc()
		s.drop()
		return r, fmt.Errorf("mismatched reply: %s seq %d to seq %d", TypeName(r.h.Type), r.h.Seq, seq)
	}
	switch {
	case r.h.Type == TypeAck:
		if s.diskLow {
			s.log.Info("remote auditd disk space recovered")
		}
		s.diskLow = false
	case r.h.Type == TypeDiskLow:
		s.m.diskLow.Inc()
		if !s.diskLow {
			s.log.Warn("remote auditd is low on disk space; continuing", "text", r.text)
		}
		s.diskLow = true
	case r.h.Type == TypeDiskFull || r.h.Type&TypeFatalMask != 0 || r.h.Type&TypeReplyMask == 0:
		if r.h.Type == TypeDiskFull {
			s.m.diskFull.Inc()
		} else {
			s.m.diskErr.Inc()
		}
		s.failed()
		s.drop()
		s.log.Error("remote auditd did not log the record; backing off", "reply", TypeName(r.h.Type), "text", r.text)
		return r, fmt.Errorf("collector replied %s %q", TypeName(r.h.Type), r.text)
	default: // other warnings: logged, the record was written
		s.log.Warn("remote auditd warning", "reply", TypeName(r.h.Type), "text", r.text)
	}
	s.failures, s.notAfter = 0, time.Time{}
	return r, nil
}

// lost drops cn after its reader stopped and returns why.
func (s *Sink) lost(cn *conn) error {
	s.drop()
	if errors.Is(cn.err, errEnding) {
		s.m.ending.Inc()
		s.failed()
		s.log.Warn("remote auditd is shutting down; reconnecting with backoff")
		return cn.err
	}
	s.m.errs.Inc()
	return fmt.Errorf("connection lost: %w", cn.err)
}

// drop closes the connection, if any, and stops its heartbeat goroutine.
func (s *Sink) drop() {
	if s.cn != nil {
		close(s.cn.stop)
		_ = s.cn.c.Close()
		s.cn = nil
	}
}

// Write sends the record lines of each message in order, one frame in
// flight, and returns nil when the collector acknowledged all of them.
// On any failure the connection is closed and the error wraps
// sinks.ErrNotConnected; it is a *sinks.PartialError listing the messages
// fully acknowledged before the failure, if any. When a message failed
// after some of its lines were acknowledged, writing the same message
// (same Seq and Value) again resumes after those lines. Write waits for
// a heartbeat in flight (at most ack_timeout) before it starts.
func (s *Sink) Write(ctx context.Context, batch []sinks.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		m := &batch[i]
		lines := s.payloads(m.Value)
		skip := 0
		if s.resumeVal != nil && m.Seq == s.resumeSeq && bytes.Equal(m.Value, s.resumeVal) {
			skip = s.resumeN
		}
		for j := skip; j < len(lines); j++ {
			var err error
			if s.cn == nil {
				err = errors.New("connection closed")
			} else {
				_, err = s.exchange(ctx, TypeMessage, lines[j])
			}
			if err != nil {
				if j > skip {
					s.resumeSeq, s.resumeVal, s.resumeN = m.Seq, bytes.Clone(m.Value), j
				}
				err = fmt.Errorf("sink %s: %w: %w", s.name, sinks.ErrNotConnected, err)
				return sinks.DeliveredFirst(i, err)
			}
			s.m.lines.Inc()
			s.m.bytes.Add(uint64(len(lines[j])))
		}
		s.resumeVal = nil
	}
	return nil
}

// truncMark ends a line that was cut to fit MaxMessageLength.
const truncMark = ` enrich_truncated="yes"`

// payloads splits v into frame payloads: one per non-empty line, with its
// '\n', EOE lines left out, control bytes other than TAB and the 0x1D
// ENRICHED separator replaced by '?' (auditd logs the text with "%s\n"),
// and lines longer than MaxMessageLength cut at a field boundary and marked.
func (s *Sink) payloads(v []byte) [][]byte {
	var out [][]byte
	for len(v) > 0 {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		if isEOE(line) {
			s.m.eoe.Inc()
			continue
		}
		p := make([]byte, 0, min(len(line)+1, MaxMessageLength))
		if len(line)+1 > MaxMessageLength {
			cut := MaxMessageLength - 1 - len(truncMark)
			if sp := bytes.LastIndexByte(line[:cut], ' '); sp > 0 {
				cut = sp
			}
			line = append(line[:cut:cut], truncMark...)
			s.m.truncated.Inc()
			s.log.Warn("record line cut to the protocol maximum", "bytes", len(line))
		}
		for _, c := range line {
			if c < 0x20 && c != '\t' && c != 0x1d {
				c = '?'
			}
			p = append(p, c)
		}
		out = append(out, append(p, '\n'))
	}
	return out
}

// isEOE reports whether line is an EOE record ("type=EOE ..." possibly
// after a node= token).
func isEOE(line []byte) bool {
	s := string(line)
	if strings.HasPrefix(s, "node=") {
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			return false
		}
		s = s[sp+1:]
	}
	return strings.HasPrefix(s, "type=EOE ") || s == "type=EOE"
}

// Close closes the connection. The sink can be connected again.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop()
	return nil
}
