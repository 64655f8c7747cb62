package buffer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

type memState uint8

const (
	memPending memState = iota
	memInFlight
	memGone // acked or dropped
)

type memEntry struct {
	msg   sinks.Message
	size  int
	at    time.Time
	state memState
}

// memory is the in-memory Buffer. Entries are kept in a slice indexed by
// seq-base; gone entries at the front are trimmed.
type memory struct {
	cfg  Config
	opts Options
	dlog dropLog

	mu      sync.Mutex
	q       []memEntry // q[i] has seq base+i
	base    uint64
	next    uint64   // seq of the first entry never read
	retry   []uint64 // nacked seqs, sorted
	count   int      // entries not gone
	bytes   int64    // size of entries not gone
	closed  bool
	data    waiter // woken on append, nack, close
	space   waiter // woken when room is freed or on close
	nextSeq uint64
}

func newMemory(cfg Config, opts Options) *memory {
	return &memory{cfg: cfg, opts: opts}
}

func (b *memory) full(size int) bool {
	return b.bytes+int64(size) > b.cfg.MaxBytes || (b.cfg.MaxEvents > 0 && b.count+1 > b.cfg.MaxEvents)
}

func (b *memory) Append(msgs ...sinks.Message) error {
	var drops []drop
	var err error
	b.mu.Lock()
	for i := range msgs {
		if b.closed {
			err = ErrClosed // not a drop of the buffer's: see sinks.Buffer
			break
		}
		size := msgSize(&msgs[i])
		if int64(size) > b.cfg.MaxBytes {
			drops = append(drops, drop{1, ReasonTooLarge})
			err = fmt.Errorf("message of %d bytes exceeds buffer max_bytes %d", size, b.cfg.MaxBytes)
			continue
		}
		rejected := false
		for b.full(size) && !b.closed {
			switch b.cfg.WhenFull {
			case DropNewest:
				rejected = true
			case Block:
				ch := b.space.wait()
				b.mu.Unlock()
				<-ch
				b.mu.Lock()
				continue
			default:
				b.evictOldest()
				drops = appendDrop(drops, ReasonDropOldest)
				continue
			}
			break
		}
		if b.closed {
			err = ErrClosed // not a drop of the buffer's: see sinks.Buffer
			break
		}
		if rejected {
			drops = appendDrop(drops, ReasonDropNewest)
			err = fmt.Errorf("buffer full: message dropped (%s)", DropNewest)
			continue
		}
		msgs[i].Seq = b.nextSeq
		b.nextSeq++
		b.q = append(b.q, memEntry{msg: msgs[i], size: size, at: time.Now()})
		b.count++
		b.bytes += int64(size)
	}
	b.data.wake()
	b.mu.Unlock()
	report(&b.opts, &b.dlog, drops)
	return err
}

// appendDrop adds one drop of reason, merging with the last report.
func appendDrop(drops []drop, reason string) []drop {
	if n := len(drops); n > 0 && drops[n-1].reason == reason {
		drops[n-1].n++
		return drops
	}
	return append(drops, drop{1, reason})
}

// evictOldest drops the oldest entry that is not gone.
func (b *memory) evictOldest() {
	for i := range b.q {
		e := &b.q[i]
		if e.state != memGone {
			b.remove(e)
			b.trim()
			return
		}
	}
}

func (b *memory) remove(e *memEntry) {
	e.state = memGone
	e.msg = sinks.Message{}
	b.count--
	b.bytes -= int64(e.size)
}

// trim drops gone entries from the front.
func (b *memory) trim() {
	n := 0
	for n < len(b.q) && b.q[n].state == memGone {
		n++
	}
	if n == 0 {
		return
	}
	b.base += uint64(n)
	if n == len(b.q) {
		b.q = b.q[:0]
	} else {
		b.q = slices.Delete(b.q, 0, n)
	}
	if b.next < b.base {
		b.next = b.base
	}
	b.space.wake()
}

func (b *memory) entry(seq uint64) *memEntry {
	if seq < b.base || seq-b.base >= uint64(len(b.q)) {
		return nil
	}
	return &b.q[seq-b.base]
}

func (b *memory) ReadBatch(ctx context.Context, max, maxBytes int) ([]sinks.Message, error) {
	if max <= 0 {
		max = 1
	}
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		var out []sinks.Message
		size := 0
		take := func(e *memEntry) bool {
			if len(out) > 0 && (len(out) >= max || size+e.size > maxBytes) {
				return false
			}
			e.state = memInFlight
			out = append(out, e.msg)
			size += e.size
			return true
		}
		used := 0
		for _, seq := range b.retry {
			e := b.entry(seq)
			if e == nil || e.state != memPending {
				used++
				continue
			}
			if !take(e) {
				break
			}
			used++
		}
		b.retry = b.retry[used:]
		for b.next < b.base+uint64(len(b.q)) {
			e := b.entry(b.next)
			if e.state == memPending && !take(e) {
				break
			}
			b.next++
		}
		if len(out) > 0 {
			b.mu.Unlock()
			return out, nil
		}
		ch := b.data.wait()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *memory) Ack(seqs ...uint64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range seqs {
		if e := b.entry(s); e != nil && e.state == memInFlight {
			b.remove(e)
			n++
		}
	}
	b.trim()
	return n
}

func (b *memory) Nack(seqs ...uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range seqs {
		if e := b.entry(s); e != nil && e.state == memInFlight {
			e.state = memPending
			b.retry = append(b.retry, s)
		}
	}
	slices.Sort(b.retry)
	b.retry = slices.Compact(b.retry)
	b.data.wake()
}

func (b *memory) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

func (b *memory) Bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

func (b *memory) OldestAge() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.q {
		if b.q[i].state != memGone {
			return time.Since(b.q[i].at)
		}
	}
	return 0
}

// Close discards the content (there is nothing to persist): what was not
// acknowledged, in flight included, is counted as dropped (shutdown), and
// the buffer is empty afterwards. Closing again does nothing.
func (b *memory) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	lost := b.count
	b.q, b.retry, b.count, b.bytes = nil, nil, 0, 0
	b.base = b.nextSeq
	b.next = b.nextSeq
	b.data.wake()
	b.space.wake()
	b.mu.Unlock()
	report(&b.opts, &b.dlog, []drop{{lost, ReasonShutdown}})
	b.dlog.flush(b.opts.Logger)
	return nil
}
