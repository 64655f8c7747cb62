package plugin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// TestReleasedEventsLeaveIntact replays the capture through the whole
// pipeline with four workers and a queue of two, so that the parser
// reuses released slabs while other events are still being enriched,
// encoded and delivered, and compares every document with the same
// capture encoded by sinks/encode alone (no pool, no release). A
// stage that read an event after the output stage released it would read
// reused or poisoned records (audit.ReleasedMarker in test binaries);
// under -race the unordered read is reported as well.
func TestReleasedEventsLeaveIntact(t *testing.T) {
	const capture = "testdata/capture.log"
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	var p audit.Parser
	var enc encode.Full
	var want []byte
	r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) {
		want = enc.Append(want, ev)
	})
	for l := range bytes.SplitSeq(data, []byte{'\n'}) {
		if rec, err := p.Parse(string(l)); err == nil {
			r.Push(rec)
		}
	}
	r.Flush()

	dir := t.TempDir()
	out := filepath.Join(dir, "events.json")
	cfg, err := conf.Parse("t.toml", []byte(fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich]
workers = 4
queue = 2
[enrich.hashes]
enabled = false
[enrich.attack]
enabled = false
[enrich.proc]
enabled = false
[enrich.hunt]
enabled = false
[enrich.blocklist]
enabled = false
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, out)))
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(context.Background(), cfg, slog.New(slog.DiscardHandler), []string{capture}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte(audit.ReleasedMarker)) {
		t.Fatal("a document carries a released record")
	}
	g, w := bytes.Split(got, []byte{'\n'}), bytes.Split(want, []byte{'\n'})
	if len(g) != len(w) {
		t.Fatalf("%d documents, want %d", len(g)-1, len(w)-1)
	}
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			t.Fatalf("document %d differs from the capture encoded alone:\n got %s\nwant %s", i+1, g[i], w[i])
		}
	}
}
