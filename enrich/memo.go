package enrich

import (
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// ListMemo remembers what a rule enricher (hunting rules, Sigma rules)
// made of an event's lists for one list of matching rules, so that the
// next event with the same rules and the same lists gets the very same
// slices instead of copies: the event's Tags, Techniques, Hunt and Sigma
// then share their arrays with other events, as audit.Enrichment allows
// (elements are never written; a shared slice's capacity is its length,
// so that an append copies it).
//
// Lists are "the same" when they are the same slices (same first element
// and length), which by that contract means the same elements; most events
// qualify because the enrichers before hand out shared slices too (the
// ATT&CK enricher's per-key techniques, an earlier ListMemo's results).
// An event whose lists have room to grow (an enricher's own array for
// this event alone) is not memoized: add appends to its lists directly.
//
// The memo is a fixed table of listMemoSlots entries, each replaced
// whole, so it is safe for concurrent use without locks and its memory is
// bounded. The zero value is ready.
type ListMemo[R any] struct {
	slots [listMemoSlots]atomic.Pointer[listMemoEntry[R]]
}

// listMemoSlots is the number of (rules, lists) combinations a ListMemo
// holds at once; a combination that comes back after its slot was taken
// is built again.
const listMemoSlots = 64

type listMemoEntry[R any] struct {
	hits    []*R
	in, out lists
}

// lists are the Enrichment lists a ListMemo covers.
type lists struct {
	tags  []string
	techs []audit.Technique
	hunt  []audit.HuntHit
	sigma []audit.SigmaHit
}

func listsOf(e *audit.Enrichment) lists {
	return lists{e.Tags, e.Techniques, e.Hunt, e.Sigma}
}

func (l *lists) setOn(e *audit.Enrichment) {
	e.Tags, e.Techniques, e.Hunt, e.Sigma = l.tags, l.techs, l.hunt, l.sigma
}

// shareable reports whether no list has room past its length: then they
// are shared slices (or empty), and their identity stands for their
// contents.
func (l *lists) shareable() bool {
	return cap(l.tags) == len(l.tags) && cap(l.techs) == len(l.techs) &&
		cap(l.hunt) == len(l.hunt) && cap(l.sigma) == len(l.sigma)
}

func (l *lists) same(o *lists) bool {
	return audit.SameList(l.tags, o.tags) && audit.SameList(l.techs, o.techs) &&
		audit.SameList(l.hunt, o.hunt) && audit.SameList(l.sigma, o.sigma)
}

// mix folds a slice's identity into h.
func mix[T any](h uint64, s []T) uint64 {
	if len(s) > 0 {
		h = (h^uint64(uintptr(unsafe.Pointer(unsafe.SliceData(s)))))*0x9e3779b97f4a7c15 + uint64(len(s))
	}
	return h * 31
}

// slot is the table entry for hits and in.
func (m *ListMemo[R]) slot(hits []*R, in *lists) *atomic.Pointer[listMemoEntry[R]] {
	var h uint64
	for _, r := range hits {
		h = (h ^ uint64(uintptr(unsafe.Pointer(r)))) * 0x9e3779b97f4a7c15
	}
	h = mix(mix(mix(mix(h, in.tags), in.techs), in.hunt), in.sigma)
	return &m.slots[(h>>32^h)%listMemoSlots]
}

// Add sets ev's Tags, Techniques, Hunt and Sigma to what add makes of them
// for hits (the matching rules, in order; not empty): the remembered
// result when hits and ev's lists are those of an earlier call, else add's
// result, remembered. add must append to the Enrichment it is given (which
// holds ev's lists, and only them), never write an element in place, and
// depend only on hits and those lists; anything else (Severity) the caller
// sets on ev itself. ev's other fields are left alone.
func (m *ListMemo[R]) Add(ev *audit.Event, hits []*R, add func(e *audit.Enrichment)) {
	in := listsOf(&ev.Enrichment)
	var slot *atomic.Pointer[listMemoEntry[R]]
	if in.shareable() {
		slot = m.slot(hits, &in)
		if e := slot.Load(); e != nil && e.in.same(&in) && slices.Equal(e.hits, hits) {
			e.out.setOn(&ev.Enrichment)
			return
		}
	}
	var x audit.Enrichment
	in.setOn(&x)
	add(&x)
	out := listsOf(&x)
	if slot != nil {
		out = lists{slices.Clip(out.tags), slices.Clip(out.techs), slices.Clip(out.hunt), slices.Clip(out.sigma)}
		slot.Store(&listMemoEntry[R]{hits: slices.Clone(hits), in: in, out: out})
	}
	out.setOn(&ev.Enrichment)
}
