package sigma

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// eventOf parses auditd's string format (one record per line, all of one
// event) into an event, as the reassembler hands it to the enrichers.
func eventOf(t testing.TB, text string) *audit.Event {
	t.Helper()
	var p audit.Parser
	ev := &audit.Event{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		line = strings.Replace(strings.TrimSpace(line), " @", "\x1d", 1)
		line = strings.ReplaceAll(line, " @", " ")
		r, err := p.Parse(line)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		ev.ID = audit.EventID{Sec: r.Sec, Msec: r.Msec, Serial: r.Serial}
		ev.Records = append(ev.Records, r)
	}
	return ev
}

// ruleFile writes rule texts into one file each under a new directory.
func ruleDir(t testing.TB, rules ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, r := range rules {
		if err := os.WriteFile(filepath.Join(dir, "r"+string(rune('a'+i))+".yml"), []byte(r), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestEnricher loads rules (YAML texts) and fails on any problem.
func newTestEnricher(t testing.TB, rules ...string) *Enricher {
	t.Helper()
	e, err := New(Config{Rules: []string{ruleDir(t, rules...)}}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range e.Set().Problems {
		t.Fatalf("problem: %s", p)
	}
	return e
}

// matched returns the ids of the rules that matched ev.
func matched(t testing.TB, e *Enricher, ev *audit.Event) []string {
	t.Helper()
	ev.Sigma = nil
	if err := e.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range ev.Sigma {
		ids = append(ids, h.ID)
	}
	return ids
}

// rule builds a rule text of logsource ls ("auditd" or a category) with
// the given detection body (indented by four spaces).
func rule(id, ls, detection string) string {
	src := "    product: linux\n    category: " + ls + "\n"
	if ls == "auditd" {
		src = "    product: linux\n    service: auditd\n"
	}
	return "title: Test " + id + "\nid: " + id + "\nauthor: Tester\nlevel: high\ntags:\n    - attack.execution\n    - attack.t1059.004\nlogsource:\n" + src + "detection:\n" + detection
}
