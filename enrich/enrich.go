// Package enrich defines the Enricher contract and runs enrichers over events
// in a bounded worker pool that keeps the input order.
package enrich

import (
	"context"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Enricher adds information to an event.
//
// Enrich is called from several goroutines at once, each with a different
// event, so implementations must be safe for concurrent use. An event is
// owned by the caller for the duration of the call; the enricher may write
// only its own Enrichment fields.
//
// Enrich must return before ctx is done: the pool runs each event's chain
// under a deadline (enrich.timeout after the chain started); an enricher
// that waits for something (VirusTotal's max_wait) waits no longer. ctx is
// valid only during the call: the pool reuses it for the next event, so an
// enricher must not keep it. A non-nil error becomes a warning on the event; it never drops
// the event. Network I/O must not happen on this path: enrichers that need it
// (VirusTotal) queue the work and report a pending status instead.
type Enricher interface {
	Name() string
	Enrich(ctx context.Context, ev *audit.Event) error
}

// Emitter receives documents that an enricher produces on its own, outside
// the flow of audit events (for example a VirusTotal verdict that arrived
// after its events were sent). Emit must not block for long; it is safe for
// concurrent use.
type Emitter interface {
	Emit(ev *audit.Event)
}
