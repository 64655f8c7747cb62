package fleet

import (
	"sync"

	"github.com/IBM/sarama"
)

// feeder hands messages to an AsyncProducer through a bounded queue, so
// that callers never block (sarama's input channel is unbuffered, and
// blocks while the brokers are away and its own buffers are full). Safe
// for concurrent use.
type feeder struct {
	prod sarama.AsyncProducer

	mu     sync.Mutex
	q      chan *sarama.ProducerMessage
	closed bool
	done   chan struct{}
}

func newFeeder(prod sarama.AsyncProducer, size int) *feeder {
	f := &feeder{prod: prod, q: make(chan *sarama.ProducerMessage, size), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for m := range f.q {
			prod.Input() <- m
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
	select {
	case f.q <- m:
		return true
	default:
		return false
	}
}

// close hands the queued messages to the producer and closes it; the
// producer's Successes and Errors channels close once it has flushed.
func (f *feeder) close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.q)
	}
	f.mu.Unlock()
	<-f.done
	f.prod.AsyncClose()
}
