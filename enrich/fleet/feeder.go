package fleet

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// feeder hands messages to an AsyncProducer through a bounded queue, so
// that callers never block (sarama's input channel is unbuffered, and
// blocks while the brokers are away and its own buffers are full), and
// reports each acknowledgement to ok and each failure to fail (from its
// own goroutine). Safe for concurrent use.
type feeder struct {
	prod sarama.AsyncProducer

	mu      sync.Mutex
	q       chan *sarama.ProducerMessage
	waiting atomic.Int64 // offered and not yet reported
	closed  bool
	done    chan struct{} // closed when the queue is drained into the producer
	acked   chan struct{} // closed when the producer's result channels are drained
}

func newFeeder(prod sarama.AsyncProducer, size int, ok func(*sarama.ProducerMessage), fail func(*sarama.ProducerError)) *feeder {
	f := &feeder{prod: prod, q: make(chan *sarama.ProducerMessage, size), done: make(chan struct{}), acked: make(chan struct{})}
	go func() {
		defer close(f.done)
		for m := range f.q {
			prod.Input() <- m
		}
	}()
	go func() {
		defer close(f.acked)
		succ, errs := prod.Successes(), prod.Errors()
		for succ != nil || errs != nil {
			select {
			case m, more := <-succ:
				if !more {
					succ = nil
					continue
				}
				ok(m)
				f.waiting.Add(-1)
			case pe, more := <-errs:
				if !more {
					errs = nil
					continue
				}
				fail(pe)
				f.waiting.Add(-1)
			}
		}
	}()
	return f
}

// offer queues m and reports whether there was room (false also after close).
func (f *feeder) offer(m *sarama.ProducerMessage) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.waiting.Add(1) // before the send: the result may be reported at once
	select {
	case f.q <- m:
		return true
	default:
		f.waiting.Add(-1)
		return false
	}
}

// flush waits until every message offered before it was acknowledged or
// reported failed, or until ctx ends (its error is returned then).
func (f *feeder) flush(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for f.waiting.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// close hands the queued messages to the producer, closes it and waits
// until it has flushed and every result was reported.
func (f *feeder) close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.q)
	}
	f.mu.Unlock()
	<-f.done
	f.prod.AsyncClose()
	<-f.acked
}
