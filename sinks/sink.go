// Package sinks defines the Sink contract and what all sinks share: the
// per-sink Buffer contract, the runner that moves messages from the buffer
// into the sink with retries, and the document filter. The output stage
// (filter, encoding, hand-off) is package sinks/output.
package sinks

import (
	"context"
	"errors"
	"fmt"
)

// Message is one encoded document on its way to a sink.
type Message struct {
	// Seq is the buffer sequence number; acknowledgements refer to it.
	Seq uint64
	// Key is an optional partition or routing key (Kafka message key).
	Key []byte
	// Value is the encoded document.
	Value []byte
	// Meta carries routing hints the encoder computed (node, record types,
	// keys, technique ids, severity) for topic templates and headers.
	Meta Meta
}

// Meta is routing information about a message.
type Meta struct {
	Node       string
	Types      []string
	Keys       []string
	Techniques []string
	// Tags are the event's tags besides its keys (hunting, blocklist, IMA).
	Tags     []string
	Severity int
	Kind     string
}

// Sink delivers messages to one destination.
//
// Order of calls: Connect, then Write any number of times, then Close;
// never two calls at once (one goroutine drives a sink). Connect may follow
// Close: after Write returns ErrNotConnected the runner closes the sink
// and connects it again, so a sink must keep its configuration and its
// metrics across Close and be ready for another Connect. Write after Close
// without a new Connect returns an error. Close may be called twice.
//
// Write returns nil when every message of the batch was delivered and
// acknowledged by the destination, a *PartialError when only some were,
// ErrNotConnected when the connection is gone (the runner closes the sink
// and calls Connect again with backoff), and any other error when the
// whole batch should be retried. Write and Connect must return soon after
// ctx is done. sinks/sinktest checks all of this against a real peer.
//
// Metrics: a sink registers its series once, in its constructor, in the
// registry its caller gives it, named audisp_enrich_<type>_* with the
// label sink="NAME"; a sink of the same name built later (a reload)
// continues the same series.
type Sink interface {
	Name() string
	Connect(ctx context.Context) error
	Write(ctx context.Context, batch []Message) error
	Close(ctx context.Context) error
}

// ErrNotConnected tells the runner to reconnect before writing again.
var ErrNotConnected = errors.New("not connected")

// PartialError reports which messages of a batch were delivered.
type PartialError struct {
	// Delivered holds the indexes (into the batch) of the messages that
	// were delivered; all others are retried.
	Delivered []int
	Err       error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d messages delivered, rest failed: %v", len(e.Delivered), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// SplitDelivered splits a batch that Write answered with a *PartialError:
// delivered holds the messages at the indexes it names (indexes out of
// range and repeated ones are ignored), rest the others, in batch order.
func SplitDelivered(batch []Message, indexes []int) (delivered, rest []Message) {
	ok := make([]bool, len(batch))
	for _, i := range indexes {
		if i >= 0 && i < len(batch) && !ok[i] {
			ok[i] = true
			delivered = append(delivered, batch[i])
		}
	}
	rest = make([]Message, 0, len(batch)-len(delivered))
	for i := range batch {
		if !ok[i] {
			rest = append(rest, batch[i])
		}
	}
	return delivered, rest
}
