package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestSIGHUPKeepsSigmaRulesAndProcTable: a SIGHUP (Reopen, then Reload)
// after a rule file broke keeps the rules that file had, whether
// [enrich.sigma] is unchanged (the running enricher is carried over) or
// changed (the new one loads with the running rules as the previous set);
// an unchanged [enrich.proc] keeps the process table and what it learnt.
// Before, the reload built a new enricher that loaded the broken file with
// no previous set, and a new, empty table.
func TestSIGHUPKeepsSigmaRulesAndProcTable(t *testing.T) {
	const id = "5b0c2f9e-0000-4000-8000-00000000hup1"
	first, _ := reloadLines(t)
	for _, change := range []string{"", "[enrich.sigma]\nreload_interval = \"1h\"\n"} {
		t.Run(fmt.Sprintf("sigma changed %v", change != ""), func(t *testing.T) {
			dir := t.TempDir()
			rules := filepath.Join(dir, "rules")
			must(t, os.Mkdir(rules, 0o755))
			rule := filepath.Join(rules, "r.yml")
			must(t, os.WriteFile(rule, []byte(testsupport.SigmaRule("worker", id, "high", nil, "Image|endswith: '/worker'")), 0o644))
			sigmaSection := fmt.Sprintf("[enrich.sigma]\nrules = [%q]\n", rules)
			base := fmt.Sprintf("state_dir = %q\n[log]\nsyslog = false\n[[sink]]\nname = \"events\"\ntype = \"file\"\n[sink.file]\npath = %q\n",
				dir, filepath.Join(dir, "events.json"))
			cfg := parseConfig(t, base+sigmaSection+"reload_interval = \"0s\"\n")
			next := cfg
			if change != "" {
				next = parseConfig(t, base+sigmaSection+"reload_interval = \"1h\"\n")
			}
			p, err := NewPipeline(cfg, slog.New(slog.DiscardHandler), &metrics.Registry{}, true)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				p.Close(ctx)
			}()
			for _, l := range first {
				p.handle(l, inputPos{})
			}
			p.Idle()
			known := p.enr.proc.Stats().Len
			if known == 0 {
				t.Fatal("the process table learnt nothing from the capture")
			}
			must(t, os.WriteFile(rule, []byte("title: broken\nid: x\n  bad: [\n"), 0o644))
			running, table := p.enr.sigma, p.enr.proc
			p.Reopen()
			if err := p.Reload(next); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range p.enr.sigma.Set().Rules() {
				ids = append(ids, r.ID)
			}
			if len(ids) != 1 || ids[0] != id {
				t.Errorf("rules after the SIGHUP %v, want the broken file's previous rule %s", ids, id)
			}
			if change == "" && p.enr.sigma != running {
				t.Error("[enrich.sigma] unchanged, but the SIGHUP replaced the running Sigma enricher")
			}
			if p.enr.proc != table {
				t.Error("[enrich.proc] unchanged, but the SIGHUP replaced the process table")
			}
			if n := p.enr.proc.Stats().Len; n < known {
				t.Errorf("process table holds %d pids after the SIGHUP, %d before", n, known)
			}
		})
	}
}

// TestFailedSigmaReloadKeepsPolling: a SIGHUP whose new [enrich.sigma]
// cannot load (a rules path that does not exist) keeps the running
// enricher, and that enricher still polls its rule files: a rule edited
// afterwards is loaded. (The failed build used to close the running
// enricher's poller.)
func TestFailedSigmaReloadKeepsPolling(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	must(t, os.Mkdir(rules, 0o755))
	rule := filepath.Join(rules, "r.yml")
	must(t, os.WriteFile(rule, []byte(testsupport.SigmaRule("worker", "5b0c2f9e-0000-4000-8000-0000000poll1", "high", nil, "Image|endswith: '/worker'")), 0o644))
	base := fmt.Sprintf("state_dir = %q\n[log]\nsyslog = false\n[[sink]]\nname = \"events\"\ntype = \"file\"\n[sink.file]\npath = %q\n",
		dir, filepath.Join(dir, "events.json"))
	cfg := parseConfig(t, base+fmt.Sprintf("[enrich.sigma]\nrules = [%q]\nreload_interval = \"50ms\"\n", rules))
	p, err := NewPipeline(cfg, slog.New(slog.DiscardHandler), &metrics.Registry{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	}()
	running := p.enr.sigma
	bad := parseConfig(t, base+fmt.Sprintf("[enrich.sigma]\nrules = [%q, %q]\nreload_interval = \"50ms\"\n", rules, filepath.Join(dir, "gone")))
	if err := p.Reload(bad); err == nil {
		t.Fatal("a reload naming a missing rules path succeeded")
	}
	if p.enr.sigma != running {
		t.Fatal("the failed reload replaced the running Sigma enricher")
	}
	const second = "5b0c2f9e-0000-4000-8000-0000000poll2"
	must(t, os.WriteFile(filepath.Join(rules, "s.yml"), []byte(testsupport.SigmaRule("other", second, "high", nil, "Image|endswith: '/other'")), 0o644))
	loaded := func() bool {
		for _, r := range running.Set().Rules() {
			if r.ID == second {
				return true
			}
		}
		return false
	}
	if !testsupport.Until(10*time.Second, loaded) {
		t.Fatal("the running Sigma enricher stopped polling its rules after the failed reload")
	}
}
