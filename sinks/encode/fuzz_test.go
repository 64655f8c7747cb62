package encode

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// fixtureLines returns every line of the parser's fixtures
// (plugin/audit/testdata/*.log), the fuzz seeds.
func fixtureLines(f *testing.F) []string {
	logs, _ := filepath.Glob(filepath.Join(fixtures, "*.log"))
	var lines []string
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		f.Fatal("no seed lines in " + fixtures + "/*.log")
	}
	return lines
}

// checkDoc asserts the encoder's guarantees on one document.
func checkDoc(t *testing.T, doc []byte) {
	t.Helper()
	if !utf8.Valid(doc) {
		t.Fatalf("not valid UTF-8: %q", doc)
	}
	if !json.Valid(doc) {
		t.Fatalf("not valid JSON: %s", doc)
	}
	if err := audittest.CheckKeys(doc); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
}

// FuzzJSONEncoder: events built from fuzzed lines through the reassembler
// (small bounds, stream time) all encode to one valid JSON line each, and
// to msgpack that decodes to the same data.
func FuzzJSONEncoder(f *testing.F) {
	lines := fixtureLines(f)
	for i := 0; i < len(lines); i += 3 {
		f.Add(strings.Join(lines[i:min(i+6, len(lines))], "\n"))
	}
	// other machines' lines: big-endian SOCKADDR, numbered types, SELinux
	// decisions, IMA policy records (TestForeignLines)
	foreign, err := os.ReadFile("testdata/foreign.log")
	if err != nil {
		f.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(string(foreign)), "\n")
	for i := 0; i < len(lines); i += 4 {
		f.Add(strings.Join(lines[i:min(i+4, len(lines))], "\n"))
	}
	f.Fuzz(func(t *testing.T, input string) {
		pl := newPipeline(audit.ReassemblerConfig{StreamTime: true, MaxInFlight: 4})
		for _, l := range strings.Split(input, "\n") {
			pl.line(l)
		}
		pl.r.Flush()
		docs := splitDocs(pl.out)
		if len(docs) != len(pl.evs) {
			t.Fatalf("%d documents for %d events", len(docs), len(pl.evs))
		}
		var mp Full
		mp.Format = Msgpack
		for i, d := range docs {
			checkDoc(t, d)
			if err := audittest.SameDocument(d, mp.Append(nil, pl.evs[i])); err != nil {
				t.Fatalf("%v\n%s", err, d)
			}
		}
		// With shared enrichment lists (tags that may be among the
		// fuzzed rule keys; threat, hunt and sigma) and process context
		// (parent, ancestry, cgroup facts), the caches write what an
		// encoder without them writes.
		cached := [2]Full{{Format: JSON}, {Format: Msgpack}}
		for i, ev := range pl.evs {
			l := &fuzzLists[i%len(fuzzLists)]
			ev.Tags, ev.Techniques, ev.Hunt, ev.Sigma = l.tags, l.techniques, l.hunt, l.sigma
			ev.Parent, ev.Ancestry, ev.Cgroup = l.parent, l.ancestry, l.cgroup
			for k := range cached {
				c := &cached[k]
				got := c.Append(nil, ev)
				fresh := Full{Format: c.Format}
				if want := fresh.Append(nil, ev); !bytes.Equal(got, want) {
					t.Fatalf("event %d, format %d: cached %q\nwant %q", i, c.Format, got, want)
				}
			}
		}
	})
}

// fuzzLists are the shared enrichment lists FuzzJSONEncoder hands its
// events in turn (the first twice in a row).
var fuzzLists = func() []sharedLists {
	tags := []string{"T1059.004_corpus", "hunt:exec_from_temp_dir", "key", "bad\xff", `quote"d`}
	ts := []audit.Technique{{ID: "T1059.004", Name: "Unix Shell", ParentID: "T1059", Parent: "Command and Scripting Interpreter"}}
	hunt := []audit.HuntHit{{Rule: "exec_from_temp_dir", Severity: 3, Tags: []string{"exec_from_temp"}}}
	sigma := []audit.SigmaHit{{ID: "a39d7fa7-3fbd-4dc2-97e1-d87f546b1bbc", Title: "Program Executions in Suspicious Folders", Level: "medium"}}
	bash := &audit.Process{PID: 100, Executable: "/usr/bin/bash", Args: []string{"bash", "-c", `quote"d`}}
	odd := &audit.Process{PID: 101, Executable: "/tmp/bad\xff", Args: []string{"bad\xff"}}
	chain := []*audit.Process{bash, odd, {PID: 1, Executable: "/usr/lib/systemd/systemd"}}
	unit := &audit.Cgroup{Path: "/system.slice/bad\xff.service", Unit: "bad\xff.service"}
	ctr := &audit.Cgroup{Path: "/kubepods/pod1/x", ContainerID: "ab01", Runtime: "cri-o", PodUID: "pod1"}
	return []sharedLists{{tags, ts, hunt, sigma, bash, chain, unit}, {tags, ts, hunt, sigma, bash, chain, unit},
		{tags[2:], ts, nil, sigma, odd, chain[1:], ctr}, {nil, nil, hunt, nil, nil, nil, nil},
		{tags, ts, hunt, sigma, bash, chain[:2], unit}}
}()

// sharedLists are the lists and values of an event that enrichers may
// share between events (audit.Enrichment).
type sharedLists struct {
	tags       []string
	techniques []audit.Technique
	hunt       []audit.HuntHit
	sigma      []audit.SigmaHit
	parent     *audit.Process
	ancestry   []*audit.Process
	cgroup     *audit.Cgroup
}
