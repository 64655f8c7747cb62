// Package buffer holds the per-sink buffers that sit between the fan-out
// and a sink's runner: a bounded in-memory queue and a durable disk spool
// (a segment write-ahead log with a CRC per record and an ack marker).
//
// Both implement sinks.Buffer. Guarantees common to both:
//   - Append assigns consecutive sequence numbers and never blocks unless
//     WhenFull is "block".
//   - ReadBatch returns messages in sequence order (re-read messages, those
//     given back with Nack, come first), never one that is in flight.
//   - An entry leaves only when acknowledged; acks may come in any order.
//   - Every drop is counted, logged at ERROR and reported to OnDrop.
//
// The disk buffer adds: whatever was not acknowledged is read again after a
// restart or crash; appended data survives a process kill at once (it is
// written to the file before Append returns) and a host crash once fsynced
// (at most FsyncInterval or FsyncBytes later). When the spool cannot be
// written (disk full, no inodes, I/O errors), records wait in a bounded
// memory fallback and the buffer resumes on its own once the fault clears;
// each fault is counted and logged with its cause. Losses to damage found
// on disk are counted by the sequence numbers missing, not per region.
package buffer

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Buffer is the contract both implementations satisfy; it is defined in
// package sinks so that the runner can use it without importing this one.
type Buffer = sinks.Buffer

// Buffer types.
const (
	TypeMemory = "memory"
	TypeDisk   = "disk"
)

// WhenFull policies.
const (
	// DropOldest evicts the oldest entries (for disk: the oldest segment)
	// to make room. The default.
	DropOldest = "drop_oldest"
	// DropNewest rejects the message being appended.
	DropNewest = "drop_newest"
	// Block makes Append wait until acknowledgements free room. This
	// pushes back into the input and, through it, into auditd.
	Block = "block"
)

// Drop reasons passed to OnDrop and used as metric labels.
const (
	ReasonDropOldest = "drop_oldest" // evicted to make room
	ReasonDropNewest = "drop_newest" // rejected because the buffer was full
	ReasonTooLarge   = "too_large"   // a single message larger than the buffer
	ReasonCorrupt    = "corrupt"     // records lost to damage found on disk, counted by missing sequence numbers
	ReasonTornTail   = "torn_tail"   // records lost to an incomplete end of the newest segment after a crash
	ReasonIOError    = "io_error"    // the spool could not take the records and the memory fallback was full
	ReasonShutdown   = "shutdown"    // held by a memory buffer, or only in the memory fallback of a disk buffer, when it closed
)

// ErrClosed is returned by Append and ReadBatch after Close. The messages
// an Append could not queue because of it are not counted as drops: the
// caller accounts for them (see sinks.Buffer).
var ErrClosed = errors.New("buffer closed")

// Defaults.
const (
	DefaultMemoryMaxBytes  = 64 << 20
	DefaultMemoryMaxEvents = 100000
	DefaultDiskMaxBytes    = 1 << 30
	DefaultFsyncInterval   = 200 * time.Millisecond
	DefaultFsyncBytes      = 8 << 20
	DefaultFallbackBytes   = 16 << 20
)

// Config configures one sink's buffer (the `[sink.buffer]` table).
type Config struct {
	// Type is "memory" or "disk" (default). A memory buffer loses its
	// content when the process stops; a disk buffer does not.
	Type string `toml:"type"`
	// MaxBytes bounds the buffer: for memory the bytes of the queued
	// messages, for disk the bytes of the spool files. 0 means the default
	// (64 MiB memory, 1 GiB disk).
	MaxBytes int64 `toml:"max_bytes"`
	// MaxEvents bounds the number of unacknowledged messages. 0 means the
	// default: 100000 for memory, unlimited for disk.
	MaxEvents int `toml:"max_events"`
	// WhenFull is "drop_oldest" (default), "drop_newest" or "block".
	WhenFull string `toml:"when_full"`
	// FsyncInterval is the longest time appended data stays unsynced
	// (disk only). Default 200ms.
	FsyncInterval time.Duration `toml:"fsync_interval"`
	// FsyncBytes forces a sync once this many bytes are unsynced (disk
	// only). Default 8 MiB.
	FsyncBytes int `toml:"fsync_bytes"`
	// FallbackBytes bounds the memory a disk buffer uses for records the
	// spool cannot take (disk full, no inodes, I/O errors) until it can
	// again (disk only). 0 means the default, 16 MiB.
	FallbackBytes int64 `toml:"fallback_bytes"`
	// Dir is the spool directory of this sink (disk only). It must not be
	// shared with another sink (Open locks it); when it is empty the
	// runtime sets it to SpoolDir(state directory, sink name).
	Dir string `toml:"dir"`
}

// DefaultConfig returns a disk buffer with the defaults filled in, except
// MaxBytes and MaxEvents, which stay 0 so that they take the default of
// whichever type the config file ends up choosing, and Dir (see SpoolDir).
func DefaultConfig() Config {
	return Config{
		Type:          TypeDisk,
		WhenFull:      DropOldest,
		FsyncInterval: DefaultFsyncInterval,
		FsyncBytes:    DefaultFsyncBytes,
	}
}

// SpoolDir is the default Dir for a sink: <stateDir>/spool/<sink>, with
// every byte of the name outside [A-Za-z0-9._-] replaced by '_'.
func SpoolDir(stateDir, sink string) string {
	b := []byte(sink)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	name := string(b)
	if name == "" || strings.Trim(name, ".") == "" {
		name = "_" + name
	}
	return filepath.Join(stateDir, "spool", name)
}

// Validate reports the first invalid option. It accepts zero values that
// mean "default" and an empty Dir (filled in by the runtime).
func (c *Config) Validate() error {
	switch c.Type {
	case "", TypeMemory, TypeDisk:
	default:
		return fmt.Errorf("buffer type %q: want %q or %q", c.Type, TypeMemory, TypeDisk)
	}
	switch c.WhenFull {
	case "", DropOldest, DropNewest, Block:
	default:
		return fmt.Errorf("buffer when_full %q: want %q, %q or %q", c.WhenFull, DropOldest, DropNewest, Block)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("buffer max_bytes %d: must not be negative", c.MaxBytes)
	}
	if c.MaxBytes > 0 && c.MaxBytes < 4096 {
		return fmt.Errorf("buffer max_bytes %d: must be at least 4096", c.MaxBytes)
	}
	if c.MaxEvents < 0 {
		return fmt.Errorf("buffer max_events %d: must not be negative", c.MaxEvents)
	}
	if c.FsyncInterval < 0 {
		return fmt.Errorf("buffer fsync_interval %v: must not be negative", c.FsyncInterval)
	}
	if c.FsyncInterval > time.Minute {
		return fmt.Errorf("buffer fsync_interval %v: must be at most 1m", c.FsyncInterval)
	}
	if c.FallbackBytes < 0 {
		return fmt.Errorf("buffer fallback_bytes %d: must not be negative", c.FallbackBytes)
	}
	if c.FsyncBytes < 0 {
		return fmt.Errorf("buffer fsync_bytes %d: must not be negative", c.FsyncBytes)
	}
	return nil
}

// withDefaults returns c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Type == "" {
		c.Type = TypeDisk
	}
	if c.WhenFull == "" {
		c.WhenFull = DropOldest
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultDiskMaxBytes
		if c.Type == TypeMemory {
			c.MaxBytes = DefaultMemoryMaxBytes
		}
	}
	if c.MaxEvents == 0 && c.Type == TypeMemory {
		c.MaxEvents = DefaultMemoryMaxEvents
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = DefaultFsyncInterval
	}
	if c.FsyncBytes == 0 {
		c.FsyncBytes = DefaultFsyncBytes
	}
	if c.FallbackBytes == 0 {
		c.FallbackBytes = DefaultFallbackBytes
	}
	return c
}

// Options are the runtime parts of a buffer that do not come from config.
type Options struct {
	// Name is the sink name, used in log lines.
	Name string
	// OnDrop is called after messages were lost, with how many and why
	// (one of the Reason constants). It is called without any buffer lock
	// held, possibly from Append, ReadBatch, Open or the sync goroutine;
	// it must not append to the same buffer synchronously (that could
	// recurse on a full buffer). May be nil.
	OnDrop func(n int, reason string)
	// Logger receives ERROR lines for drops, corruption and spool I/O
	// errors, and an INFO line when Open waits for a disk buffer's lock;
	// nil means slog.Default().
	Logger *slog.Logger
	// Metrics, when set, receives the disk buffer's own figures
	// (audisp_enrich_buffer_faults_total, audisp_enrich_buffer_fallback_*),
	// unregistered by Close.
	Metrics *metrics.Registry
}

// Open opens the buffer cfg describes. For a disk buffer it creates
// cfg.Dir if needed, takes an exclusive lock on it and recovers what a
// previous run left. While another open file holds that lock (a previous
// plugin still shutting down, or another process), Open waits for it, for
// up to 3 s (trying five times a second), and then fails with an error
// that names the directory and says it waited.
func Open(cfg Config, opts Options) (Buffer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Logger = opts.Logger.With("sink", opts.Name, "buffer", cfg.Type)
	if cfg.Type == TypeMemory {
		return newMemory(cfg, opts), nil
	}
	return openDisk(cfg, opts)
}

// Opener returns a function that opens the buffer cfg describes with opts
// and the given drop callback, in the shape sinks.NewRunner takes.
func Opener(cfg Config, opts Options) func(onDrop func(n int, reason string)) (sinks.Buffer, error) {
	return func(onDrop func(n int, reason string)) (sinks.Buffer, error) {
		opts.OnDrop = onDrop
		return Open(cfg, opts)
	}
}

// drop is one pending OnDrop report, collected under the buffer lock and
// delivered after it is released.
type drop struct {
	n      int
	reason string
}

// report logs drops (see dropLog) and passes them to OnDrop.
func report(opts *Options, log *dropLog, drops []drop) {
	for _, d := range drops {
		if d.n <= 0 {
			continue
		}
		log.add(opts.Logger, d)
		if opts.OnDrop != nil {
			opts.OnDrop(d.n, d.reason)
		}
	}
}

// dropLog writes the ERROR line for drops: the first drop of a reason at
// once, later ones summed into at most one line per second per reason, and
// the rest at Close, so a full buffer cannot flood the log.
type dropLog struct{ rl rateLog }

func (l *dropLog) add(log *slog.Logger, d drop) {
	if n, due := l.rl.note(d.reason, d.n); due {
		log.Error("buffer dropped messages", "count", n, "reason", d.reason)
	}
}

// flush logs what add held back.
func (l *dropLog) flush(log *slog.Logger) {
	for reason, n := range l.rl.pending() {
		log.Error("buffer dropped messages", "count", n, "reason", reason)
	}
}

// msgSize is the size a message is accounted with in limits and batches.
func msgSize(m *sinks.Message) int {
	n := len(m.Key) + len(m.Value) + len(m.Meta.Node) + len(m.Meta.Kind)
	for _, l := range [][]string{m.Meta.Types, m.Meta.Keys, m.Meta.Techniques} {
		for _, s := range l {
			n += len(s)
		}
	}
	return n
}

// waiter is a broadcast channel: wait() returns a channel closed at the
// next wake(). The owner's lock guards it.
type waiter struct{ ch chan struct{} }

func (w *waiter) wait() <-chan struct{} {
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *waiter) wake() {
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}
