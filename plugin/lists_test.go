package plugin

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// listsRule matches the worker executions of testdata/capture.log, with
// two techniques, so that its hits go through the shared lists.
var listsRule = testsupport.SigmaRule("Capture worker", "7c1d3e0a-0000-4000-8000-000000000002", "medium",
	[]string{"attack.execution", "attack.t1059.004", "attack.t1036"}, "Image|endswith: '/worker'")

// The enrichment lists (Tags, Techniques, Hunt, Sigma) that the real
// enrichers share between events keep audit.Enrichment's contract: every
// event's lists, copied when its chain ended, are the same after all the
// events went through two workers (no enricher wrote an element of a
// shared array in place, nor appended into one another event holds), and
// events with the same hits do share them.
func TestSharedListsUnchanged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "worker.yml"), []byte(listsRule), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("rule", func(t *testing.T) { checkSharedLists(t, []string{dir}) })
	t.Run("sigmahq", func(t *testing.T) {
		base := testsupport.SharedDir(t, "sigma")
		checkSharedLists(t, []string{dir, filepath.Join(base, "rules", "linux"), filepath.Join(base, "rules-threat-hunting", "linux")})
	})
}

func checkSharedLists(t *testing.T, rules []string) {
	quoted := make([]string, len(rules))
	for i, r := range rules {
		quoted[i] = strconv.Quote(r)
	}
	cfg, err := conf.Parse("lists.toml", fmt.Appendf(nil, `state_dir = %q
[log]
syslog = false
[enrich.proc]
proc_fallback = false
[enrich.sigma]
rules = [%s]
reload_interval = "0s"
`, t.TempDir(), strings.Join(quoted, ", ")))
	if err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{cfg.Enrich.Hashes.Enabled, cfg.Enrich.Proc.Enabled, cfg.Enrich.Attack.Enabled, cfg.Enrich.Hunt.Enabled} {
		if !on {
			t.Fatal("an enricher this test needs is off by default")
		}
	}
	enr, err := buildEnrichers(&cfg.Enrich, nil, slog.New(slog.DiscardHandler), &metrics.Registry{}, nil, false, nil, false, nil, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enr.close()
	type done struct {
		ev    *audit.Event
		lists [4]any
	}
	copyLists := func(e *audit.Enrichment) [4]any {
		return [4]any{slices.Clone(e.Tags), slices.Clone(e.Techniques), slices.Clone(e.Hunt), slices.Clone(e.Sigma)}
	}
	var mu sync.Mutex
	var all []done
	// Events are not released here, so that their lists stay for the
	// check at the end.
	pool := enrich.NewPool(enr.chain, 2, 64, time.Second, &metrics.Registry{}, nil, func(ev *audit.Event, _ []byte) {
		mu.Lock()
		all = append(all, done{ev, copyLists(&ev.Enrichment)})
		mu.Unlock()
	})
	reasm := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, pool.Submit)
	f, err := os.Open("testdata/capture.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var parser audit.Parser
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rec, err := parser.Parse(sc.Text()); err == nil {
			reasm.Push(rec)
		}
	}
	reasm.Flush()
	pool.Close()
	shared, hits := 0, 0
	for i, d := range all {
		if got := copyLists(&d.ev.Enrichment); !reflect.DeepEqual(got, d.lists) {
			t.Fatalf("event %v: its lists changed after its chain ended:\n%+v\nwas\n%+v", d.ev.ID, got, d.lists)
		}
		if len(d.ev.Sigma) == 0 {
			continue
		}
		hits++
		if i > 0 && audit.SameList(d.ev.Sigma, all[i-1].ev.Sigma) && audit.SameList(d.ev.Techniques, all[i-1].ev.Techniques) {
			shared++
		}
	}
	t.Logf("%d events, %d with Sigma hits, %d of them sharing the lists of the event before", len(all), hits, shared)
	if hits < 100 || shared < hits/2 {
		t.Errorf("%d events with Sigma hits, %d of them sharing the lists of the event before: want at least 100, half", hits, shared)
	}
}
