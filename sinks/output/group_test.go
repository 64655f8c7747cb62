package output

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// TestNetworkSinkGroups: a network sink's documents reach its (disk)
// buffer in groups, yet none waits for a flush: a lone document is sent
// after groupWait with no Flush or Stop, and documents published in
// several groups (and through a reload that hands the buffer to a new
// sink) all arrive, in order.
func TestNetworkSinkGroups(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var serials []int
	serial := regexp.MustCompile(`:(\d+)\)`)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m := serial.FindSubmatch(buf[:n])
			mu.Lock()
			if m == nil {
				serials = append(serials, -1)
			} else {
				v, _ := strconv.Atoi(string(m[1]))
				serials = append(serials, v)
			}
			mu.Unlock()
		}
	}()
	received := func(want int) []int {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			n := len(serials)
			mu.Unlock()
			if n >= want {
				time.Sleep(50 * time.Millisecond) // and what is sent again
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), serials...)
	}
	dir := t.TempDir()
	config := func(app string) *conf.Config {
		cfg, err := conf.Parse("group.toml", []byte(fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "udp"
type = "syslog"
encoding = "audit"
[sink.syslog]
transport = "udp"
address = %q
app_name = %q
`, dir, c.LocalAddr().String(), app)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	opts := Options{Metrics: &metrics.Registry{}, Logger: slog.New(slog.DiscardHandler)}
	s1, err := New(config("one"), 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	s1.Start(context.Background(), nil)
	deliver := func(s *Stage, from, to int) {
		var buf []byte
		for i := from; i < to; i++ {
			ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1700000000, Serial: uint32(i)},
				Records: []*audit.Record{{Type: "USER", Line: fmt.Sprintf("type=USER msg=audit(1700000000.000:%d): pid=1", i)}}}
			buf = s.Encode(0, ev, buf[:0])
			s.Deliver(ev, buf)
		}
	}
	deliver(s1, 0, 1) // alone, no Flush: the timer appends it
	if got := received(1); len(got) != 1 {
		t.Fatalf("a lone document without a flush: peer got %v", got)
	}
	deliver(s1, 1, 2*groupMax+3) // two whole groups and a partial one
	s2, err := s1.Prepare(config("two"), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s2.Start(ctx, s1) // the partial group goes before the new sink's documents
	deliver(s2, 2*groupMax+3, 3*groupMax)
	s2.Stop(ctx)
	// Over udp a handover may send again what the old sink had sent but
	// not yet had acknowledged: first arrivals count.
	var first []int
	seen := map[int]bool{}
	for _, v := range received(3 * groupMax) {
		if !seen[v] {
			seen[v] = true
			first = append(first, v)
		}
	}
	if len(first) != 3*groupMax {
		t.Fatalf("peer got %d distinct documents, want %d", len(first), 3*groupMax)
	}
	for i, v := range first {
		if v != i {
			t.Fatalf("document %d is serial %d: order lost (%v)", i, v, first)
		}
	}
}
