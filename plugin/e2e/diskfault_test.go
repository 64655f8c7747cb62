package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestDiskFault runs the plugin with its state dir on a small tmpfs the
// test mounts, a Kafka sink whose broker is down while the disk fault
// happens, and a file sink for alert documents:
//
//   - full: the file system fills up (4 MiB short, 16 MiB full) under a
//     steady input; the disk buffer keeps what it can in its memory
//     fallback (1 MiB) and counts the rest as io_error.
//   - inodes: no inode is left (nr_inodes, the rest taken by empty files)
//     when new segments are due; everything waits in memory.
//
// Then the fault clears (the broker comes back, the inodes are freed) and
// more input follows, without a restart. Asserted: every event is either
// in Kafka (read back with kcat) or counted in
// audisp_enrich_sink_dropped_total, no duplicate, every event after the
// recovery arrives, the spool gives its space back, the fault is counted
// with its cause, and the alert documents (kept out of the Kafka sink)
// add up to the drops.
func TestDiskFault(t *testing.T) {
	testsupport.SkipShort(t, "real peers and the plugin binary on a tmpfs (root); long")
	t.Run("full", func(t *testing.T) { diskFault(t, "full") })
	t.Run("inodes", func(t *testing.T) { diskFault(t, "inodes") })
}

func diskFault(t *testing.T, fault string) {
	rate := 1000
	fsMiB := pick(4, 16)
	before, after := pick(3000, 8000), 1000
	base := loadEvents(t, capturePath(t))
	evs := replicate(t, base, (before+after)/len(base)+1)[:before+after]
	ids := idsOf(evs)

	dir := t.TempDir()
	cfg := newConfig(t, dir)
	if err := os.MkdirAll(cfg.state, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%dm", fsMiB)
	bufCfg := "max_bytes = 1073741824\nfallback_bytes = 1048576\n"
	if fault == "inodes" {
		opts = "size=64m,nr_inodes=4096"
		bufCfg = "max_bytes = 16777216\n" // 2 MiB segments: several new ones are due
		before = pick(1500, 3000)
		evs = evs[:before+after]
		ids = ids[:before+after]
	}
	if err := syscall.Mount("tmpfs", cfg.state, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount a tmpfs on the state dir (%v): the disk-fault runs need root", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(cfg.state, syscall.MNT_DETACH) })

	br := newBroker(t, "diskfault")
	alertsPath := filepath.Join(dir, "alerts.json")
	cfg.add(kafkaSink("kafka", br.addr, "diskfault", "[sink.buffer]\ntype = \"disk\"\n"+bufCfg+"[sink.filter]\nkinds = [\"audit\"]\n"))
	cfg.add(fileSink("alerts", alertsPath, "[sink.filter]\nkinds = [\"alert\"]\n"))
	r := newRig(t, cfg, dir, evs)
	kl := `sink="kafka"`

	var hogs []string
	if fault == "inodes" {
		for i := 0; ; i++ {
			p := filepath.Join(cfg.state, fmt.Sprintf("hog%d", i))
			f, err := os.Create(p)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
			f.Close()
			hogs = append(hogs, p)
		}
	}
	r.feedFor(time.Duration(before)*time.Second/time.Duration(rate), rate)
	if _, ok := r.p.waitMetric(30*time.Second, "audisp_enrich_sink_published_total", []string{kl}, func(v float64) bool { return v >= float64(before) }); !ok {
		t.Fatalf("published %v of %d; log:\n%s", r.p.value("audisp_enrich_sink_published_total", kl), before, r.p.logTail())
	}
	time.Sleep(500 * time.Millisecond) // a few retries of the sync loop
	text, _ := r.p.scrape()
	faults := metric(text, "audisp_enrich_buffer_faults_total", kl)
	inMemory := metric(text, "audisp_enrich_buffer_fallback_messages", kl)
	spoolPeak := metric(text, "audisp_enrich_sink_buffer_bytes", kl)
	var st syscall.Statfs_t
	_ = syscall.Statfs(cfg.state, &st)
	t.Logf("%s, broker down: %d events in; %.0f faults counted (%s); %.0f documents held in memory; buffer %.1f MiB; file system %d of %d blocks free, %d of %d inodes free",
		fault, before, faults, causes(text), inMemory, spoolPeak/(1<<20), st.Bfree, st.Blocks, st.Ffree, st.Files)
	if faults == 0 {
		t.Errorf("no spool fault counted; log:\n%s", r.p.logTail())
	}
	if !strings.Contains(readFile(t, r.logPath), "cause=ENOSPC") {
		t.Errorf("no log line names the cause ENOSPC")
	}

	for _, h := range hogs {
		os.Remove(h)
	}
	br.start()
	took := r.drained("kafka", 60*time.Second)
	r.feedRest(rate)
	r.drained("kafka", 60*time.Second)
	text, _ = r.p.scrape()
	spoolAfter := metric(text, "audisp_enrich_sink_buffer_bytes", kl)
	dropped := metric(text, "audisp_enrich_sink_dropped_total", kl)
	byReason := dropReasons(text)
	_ = syscall.Statfs(cfg.state, &st)
	r.p.closeInput(5 * time.Second)

	got := parseDocs(t, "kafka", kcat(t, br.addr, "diskfault"), 50)
	tl := count(ids, got.count)
	late := count(ids[before:], got.count)
	b, _ := os.ReadFile(alertsPath)
	var alertSum uint64
	alerts := parseDocs(t, "alerts file", splitLines(b), 1).alerts
	for _, a := range alerts {
		if a.Sink == "kafka" {
			alertSum += a.Count
		}
	}
	t.Logf("fault cleared: backlog delivered in %s; then %d more events; buffer %.0f bytes, file system %d of %d blocks free",
		took.Round(time.Millisecond), after, spoolAfter, st.Bfree, st.Blocks)
	t.Logf("sent %d, delivered %d, dropped %.0f (%s), duplicates %d; alert documents %d counting %d",
		len(evs), tl.unique, dropped, byReason, tl.dups, len(alerts), alertSum)
	if tl.unique+int(dropped) != len(evs) || tl.unexpected > 0 {
		t.Errorf("delivered %d + dropped %.0f != sent %d (%d unexpected): a loss was not counted", tl.unique, dropped, len(evs), tl.unexpected)
	}
	if tl.dups > 0 {
		t.Errorf("%d duplicates", tl.dups)
	}
	if late.missing > 0 {
		t.Errorf("%d events sent after the fault cleared were lost (e.g. %v): the buffer did not recover", late.missing, late.missingIDs)
	}
	if fault == "inodes" && dropped > 0 {
		t.Errorf("dropped %.0f with a 16 MiB memory fallback for about %d MB", dropped, before*4/1000)
	}
	if fault == "full" && dropped == 0 {
		t.Errorf("nothing dropped: the 1 MiB fallback did not fill, the test did not test the limit")
	}
	if uint64(dropped) != alertSum {
		t.Errorf("alert documents count %d, dropped %.0f", alertSum, dropped)
	}
	if spoolAfter > 1<<20 {
		t.Errorf("buffer still holds %.0f bytes after everything was acknowledged", spoolAfter)
	}
}

// causes lists the fault counters by op and cause.
func causes(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "audisp_enrich_buffer_faults_total{") {
			out = append(out, strings.TrimPrefix(l, "audisp_enrich_buffer_faults_total"))
		}
	}
	return strings.Join(out, " ")
}

// dropReasons lists the kafka sink's drop counters by reason.
func dropReasons(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, `audisp_enrich_sink_dropped_total{sink="kafka"`) {
			out = append(out, strings.TrimPrefix(l, `audisp_enrich_sink_dropped_total{sink="kafka",`))
		}
	}
	return strings.Join(out, " ")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
