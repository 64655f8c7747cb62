package fleet

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// TestVerdictBetweenMissAndPending: a verdict the follower delivers after
// an event's cache miss and before the event's hash enters the pending
// table reaches that event (the hash is not left pending for an
// interval); a verdict delivered after the hash is pending brings its
// verdict document at once.
func TestVerdictBetweenMissAndPending(t *testing.T) {
	out := &docs{got: map[string]*audit.Event{}}
	h := cacheHost(t, 100, out)
	defer h.Close()
	now := time.Now().Unix()
	v := Verdict{Status: VerdictFound, Harmless: 2, Undetected: 60, MeaningfulName: "ls", LookedUp: now, TTL: 3600, Source: SourceVirusTotal}
	early, late := fmt.Sprintf("%064x", 0xe1), fmt.Sprintf("%064x", 0xe2)
	h.afterMiss = func(d string) {
		if d == early {
			h.verdict(d, &v, nil, time.Time{})
		}
	}
	enrich := func(serial uint32, hash string) *audit.VTResult {
		ev := &audit.Event{ID: audit.EventID{Node: "h", Sec: 1700000000, Serial: serial}}
		ev.Hashes = []audit.FileHash{{Path: "/usr/bin/ls", Algo: "sha256", Hex: hash}}
		_ = h.Enrich(context.Background(), ev)
		return ev.VirusTotal
	}
	if got, want := enrich(1, early), result(early, &v); !reflect.DeepEqual(got, want) {
		t.Errorf("verdict between miss and pending: event got %+v, want %+v", got, want)
	}
	if got := enrich(2, late); got.Status != virustotal.StatusPending {
		t.Fatalf("unknown hash: %+v, want pending", got)
	}
	h.verdict(late, &v, nil, time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h.Settle(ctx)
	h.mu.Lock()
	left := len(h.pend)
	h.mu.Unlock()
	if left != 0 || out.count() != 1 || out.got[late] == nil {
		t.Errorf("%d hashes left pending, %d verdict documents (want 0 and 1, for %s)", left, out.count(), late[60:])
	}
}
