package enrich

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// memoRule is a rule as the memo sees it: what a hit adds to the lists.
type memoRule struct {
	tag  string
	tech audit.Technique
	hit  audit.SigmaHit
}

// addRules is an add function as the rule enrichers write it: appends only.
func addRules(hits []*memoRule) func(x *audit.Enrichment) {
	return func(x *audit.Enrichment) {
		for _, r := range hits {
			x.AddTag(r.tag)
			x.AddTag("shared-tag")
			x.Techniques = append(x.Techniques, r.tech)
			x.Sigma = append(x.Sigma, r.hit)
		}
	}
}

// memoLists is a deep copy of the lists a memo covers.
type memoLists struct {
	Tags       []string
	Techniques []audit.Technique
	Hunt       []audit.HuntHit
	Sigma      []audit.SigmaHit
}

func copyLists(e *audit.Enrichment) memoLists {
	return memoLists{slices.Clone(e.Tags), slices.Clone(e.Techniques), slices.Clone(e.Hunt), slices.Clone(e.Sigma)}
}

// Every event gets exactly what add makes of its own lists, whether the
// memo built or remembered it; the same hits on the same shared lists get
// the same (clipped) slices; lists with room are never memoized; no list
// an event was given is ever written afterwards (the shared-list contract
// of audit.Enrichment), also with several goroutines at once (go test
// -race checks that no two events write one array).
func TestListMemo(t *testing.T) {
	rules := make([]*memoRule, 6)
	for i := range rules {
		rules[i] = &memoRule{tag: fmt.Sprintf("r%d", i), tech: audit.Technique{ID: fmt.Sprintf("T%d", 1000+i)},
			hit: audit.SigmaHit{ID: fmt.Sprintf("id-%d", i), Tags: []string{"attack.t1036"}}}
	}
	// Base lists as earlier enrichers hand them out: shared and clipped
	// (an ATT&CK key's techniques), or nil.
	sharedTechs := [][]audit.Technique{nil, {{ID: "T1059.004"}}, {{ID: "T1105"}, {ID: "T1036"}}}
	sharedTags := [][]string{nil, {"key"}, {"hunt:x", "exec_from_temp"}}
	var memo ListMemo[memoRule]
	var wg sync.WaitGroup
	var mu sync.Mutex
	type given struct {
		ev   *audit.Event
		want memoLists
	}
	var all []given
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []given
			for range 3000 {
				ev := &audit.Event{}
				ev.Techniques = sharedTechs[rnd.IntN(len(sharedTechs))]
				ev.Tags = sharedTags[rnd.IntN(len(sharedTags))]
				if rnd.IntN(4) == 0 { // this event's own list, with room
					ev.AddTag(fmt.Sprintf("own-%d", rnd.IntN(3)))
				}
				var hits []*memoRule
				for _, r := range rules {
					if rnd.IntN(3) == 0 {
						hits = append(hits, r)
					}
				}
				if len(hits) == 0 {
					hits = rules[:1]
				}
				// What add makes of a private copy of the lists.
				var ref audit.Enrichment
				l := copyLists(&ev.Enrichment)
				ref.Tags, ref.Techniques, ref.Hunt, ref.Sigma = l.Tags, l.Techniques, l.Hunt, l.Sigma
				addRules(hits)(&ref)
				roomy := cap(ev.Tags) > len(ev.Tags)

				before := ev.Enrichment
				memo.Add(ev, hits, addRules(hits))
				if got := copyLists(&ev.Enrichment); !reflect.DeepEqual(got, copyLists(&ref)) {
					t.Errorf("lists %+v, want %+v", got, copyLists(&ref))
					return
				}
				if !roomy && (cap(ev.Tags) != len(ev.Tags) || cap(ev.Techniques) != len(ev.Techniques) || cap(ev.Sigma) != len(ev.Sigma)) {
					t.Errorf("a memoized list has room past its length: a later append would write a shared array")
					return
				}
				if roomy && len(ev.Tags) <= cap(before.Tags) && unsafe.SliceData(ev.Tags) != unsafe.SliceData(before.Tags) {
					t.Errorf("an event whose tags have room got other tags than its own, appended to")
					return
				}
				// A later enricher appends to the event's lists.
				ev.AddTag(fmt.Sprintf("late-%d", g))
				ev.Techniques = append(ev.Techniques, audit.Technique{ID: "T9999"})
				mine = append(mine, given{ev, copyLists(&ev.Enrichment)})
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	// No event's lists changed after it was done with them.
	for i, gv := range all {
		if got := copyLists(&gv.ev.Enrichment); !reflect.DeepEqual(got, gv.want) {
			t.Fatalf("event %d: lists changed after it was enriched: %+v, was %+v", i, got, gv.want)
		}
	}
	// The same hits on the same shared lists share one result.
	a, b := &audit.Event{}, &audit.Event{}
	a.Techniques, b.Techniques = sharedTechs[1], sharedTechs[1]
	memo.Add(a, rules[2:4], addRules(rules[2:4]))
	memo.Add(b, rules[2:4], addRules(rules[2:4]))
	if !audit.SameList(a.Techniques, b.Techniques) || !audit.SameList(a.Sigma, b.Sigma) || !audit.SameList(a.Tags, b.Tags) {
		t.Errorf("two events with the same hits on the same lists got different slices")
	}
	if !reflect.DeepEqual(sharedTechs[1], []audit.Technique{{ID: "T1059.004"}}) || !slices.Equal(sharedTags[2], []string{"hunt:x", "exec_from_temp"}) {
		t.Errorf("a shared base list was written: %v %v", sharedTechs[1], sharedTags[2])
	}
}

// The memo hands out remembered lists without allocating.
func TestListMemoNoAllocs(t *testing.T) {
	var memo ListMemo[memoRule]
	r := &memoRule{tag: "r", tech: audit.Technique{ID: "T1036"}, hit: audit.SigmaHit{ID: "x"}}
	base := []audit.Technique{{ID: "T1059.004"}}
	hits := []*memoRule{r}
	ev := &audit.Event{}
	add := addRules(hits)
	allocs := testing.AllocsPerRun(100, func() {
		ev.Enrichment = audit.Enrichment{Techniques: base}
		memo.Add(ev, hits, add)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per remembered event, want 0", allocs)
	}
	if len(ev.Techniques) != 2 || len(ev.Sigma) != 1 || len(ev.Tags) != 2 {
		t.Errorf("lists %+v", ev.Enrichment)
	}
}
