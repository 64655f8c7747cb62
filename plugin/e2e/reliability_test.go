package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// rig is the plugin in plugin mode with its stdin fed by the test, its
// state dir (and so its disk buffers) kept across restarts.
type rig struct {
	t       *testing.T
	dir     string
	cfg     *config
	cfgPath string
	logPath string
	p       *plugin
	evs     []inEvent
	fed     int // events written so far
}

func newRig(t *testing.T, cfg *config, dir string, evs []inEvent) *rig {
	r := &rig{t: t, dir: dir, cfg: cfg, evs: evs, logPath: filepath.Join(dir, "plugin.log")}
	r.cfgPath = cfg.write(t, filepath.Join(dir, "config.toml"))
	r.start()
	return r
}

func (r *rig) start() { r.p = startPlugin(r.t, r.cfg, r.cfgPath, r.logPath) }

// feedFor writes events at rate per second for d (or until the input runs
// out) and returns how many it wrote.
func (r *rig) feedFor(d time.Duration, rate int) int {
	r.t.Helper()
	n := min(r.fed+int(d.Seconds()*float64(rate)), len(r.evs))
	w, err := r.p.feedPaced(r.evs[r.fed:n], rate)
	r.fed += w
	if err != nil {
		r.t.Fatalf("feeding the plugin: %v; log:\n%s", err, r.p.logTail())
	}
	return w
}

// feedRest writes the remaining events at rate.
func (r *rig) feedRest(rate int) { r.feedFor(time.Duration(len(r.evs))*time.Hour, rate) }

// drained waits until the sink acknowledged everything it was given and
// its buffer is empty, and returns how long that took.
func (r *rig) drained(sink string, d time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	l := []string{`sink="` + sink + `"`}
	ok := testsupport.Until(d, func() bool {
		text, err := r.p.scrape()
		return err == nil && metric(text, "audisp_enrich_sink_queued", l...) == 0 &&
			metric(text, "audisp_enrich_sink_published_total", l...) > 0
	})
	if !ok {
		r.t.Fatalf("sink %s did not drain within %s: queued %v; log:\n%s", sink, d, r.p.value("audisp_enrich_sink_queued", l...), r.p.logTail())
	}
	return time.Since(start)
}

// outagePeer is a destination that can be stopped and started again.
type outagePeer interface {
	start()
	stop()
}

// TestOutage stops one sink's destination under load and brings it back,
// while a second sink stays up. Short: 5 s down at 1000 events/s;
// AUDISP_RELIABILITY_FULL=1: 130 s down at 500 events/s.
//
//   - kafka: kfake is stopped and started again on the same port with its
//     data kept. Nothing may be lost (unique event ids read back with kcat
//     against the input), and the syslog sink must keep receiving during
//     the outage.
//   - syslog: rsyslogd is stopped (SIGTERM) and started again; syslog over
//     TCP has no acknowledgements, so records the sink wrote into the
//     socket while rsyslogd was shutting down can be lost without the
//     sink knowing. That loss is measured and must stay below one second
//     of traffic; Kafka, up throughout, must lose nothing.
func TestOutage(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	t.Run("kafka", func(t *testing.T) { outage(t, "kafka") })
	t.Run("syslog", func(t *testing.T) { outage(t, "syslog") })
}

func outage(t *testing.T, victim string) {
	rate := pick(1000, 500)
	before, down, after := pick(time.Second, 10*time.Second), pick(5*time.Second, 130*time.Second), pick(time.Second, 10*time.Second)
	base := loadEvents(t, capturePath(t))
	total := int((before + down + after).Seconds() * float64(rate))
	evs := replicate(t, base, total/len(base)+1)[:total]

	dir := t.TempDir()
	br := newBroker(t, "outage")
	br.start()
	rs := newRsyslog(t, "")
	rs.start()
	cfg := newConfig(t, dir)
	cfg.add(kafkaSink("kafka", br.addr, "outage", "")).add(syslogSink("ae-outage", rs.addr(), ""))
	r := newRig(t, cfg, dir, evs)
	var peer outagePeer = br
	sink, other := "kafka", "ae-outage"
	if victim == "syslog" {
		peer, sink, other = rs, "ae-outage", "kafka"
	}
	sl, ol := `sink="`+sink+`"`, `sink="`+other+`"`

	r.feedFor(before, rate)
	peer.stop()
	downAt := time.Now()
	otherBefore := r.p.value("audisp_enrich_sink_acked_total", ol)
	var maxQueued, maxBytes, maxAge float64
	var mu sync.Mutex
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(250 * time.Millisecond):
			}
			text, err := r.p.scrape()
			if err != nil {
				continue
			}
			mu.Lock()
			maxQueued = max(maxQueued, metric(text, "audisp_enrich_sink_queued", sl))
			maxBytes = max(maxBytes, metric(text, "audisp_enrich_sink_buffer_bytes", sl))
			maxAge = max(maxAge, metric(text, "audisp_enrich_sink_oldest_age_seconds", sl))
			mu.Unlock()
		}
	}()
	r.feedFor(down, rate)
	otherDuring := r.p.value("audisp_enrich_sink_acked_total", ol) - otherBefore
	peer.start()
	upAt := time.Now()
	// The backlog drains while the rest of the input is still coming.
	var drainedAt time.Time
	drainDone := make(chan struct{})
	go func() {
		defer close(drainDone)
		if testsupport.Until(pick(60*time.Second, 5*time.Minute), func() bool {
			text, err := r.p.scrape()
			return err == nil && metric(text, "audisp_enrich_sink_queued", sl) < float64(rate)/10
		}) {
			drainedAt = time.Now()
		}
	}()
	r.feedRest(rate)
	<-drainDone
	r.drained(sink, pick(60*time.Second, 5*time.Minute))
	r.drained(other, 30*time.Second)
	close(stopWatch)
	<-watched
	retried := r.p.value("audisp_enrich_sink_retried_total", sl)
	reconnects := r.p.value("audisp_enrich_sink_reconnects_total", sl)
	dropped := r.p.value("audisp_enrich_sink_dropped_total")
	r.p.closeInput(5 * time.Second)

	kafka := count(idsOf(evs), parseDocs(t, "kafka", kcat(t, br.addr, "outage"), 50).count)
	syslog := count(idsOf(evs), parseDocs(t, "syslog", rs.docs("ae-outage"), 50).count)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%s down for %s at %d events/s (%d events in all)", victim, upAt.Sub(downAt).Round(time.Millisecond), rate, len(evs))
	t.Logf("backlog during the outage: up to %.0f events, %.1f MiB of spool, oldest %.1f s; %.0f retried, %.0f reconnects, %.0f dropped",
		maxQueued, maxBytes/(1<<20), maxAge, retried, reconnects, dropped)
	if !drainedAt.IsZero() {
		t.Logf("backlog caught up %s after the destination came back (while new events kept coming)", drainedAt.Sub(upAt).Round(time.Millisecond))
	}
	t.Logf("kafka (kcat): %s", kafka)
	t.Logf("syslog (rsyslogd file): %s", syslog)
	t.Logf("%s acknowledged %.0f documents while %s was down", other, otherDuring, victim)
	if dropped > 0 {
		t.Errorf("buffers dropped %v documents", dropped)
	}
	if maxQueued < float64(rate)*down.Seconds()/4 {
		t.Errorf("%s backlog peaked at %.0f events; the outage did not happen as planned", sink, maxQueued)
	}
	if want := float64(rate) * down.Seconds() / 2; otherDuring < want {
		t.Errorf("%s acknowledged %.0f documents during the outage of %s, want at least %.0f: a dead sink held up another", other, otherDuring, victim, want)
	}
	if kafka.missing > 0 || kafka.unexpected > 0 {
		t.Errorf("kafka: %d events lost (e.g. %v), %d unexpected", kafka.missing, kafka.missingIDs, kafka.unexpected)
	}
	switch victim {
	case "kafka":
		if syslog.missing > 0 {
			t.Errorf("syslog: %d events lost (e.g. %v)", syslog.missing, syslog.missingIDs)
		}
	case "syslog":
		if syslog.missing > rate {
			t.Errorf("syslog: %d events lost (e.g. %v), more than one second of traffic", syslog.missing, syslog.missingIDs)
		}
	}
}

// auditdStop stops the plugin the way auditd does (audispd.c stop_plugin):
// close its stdin (EOF), wait 50 ms, SIGTERM if it still runs, wait.
func (r *rig) auditdStop() time.Duration {
	r.t.Helper()
	start := time.Now()
	r.p.stdin.Close()
	select {
	case <-r.p.exited:
	case <-time.After(50 * time.Millisecond):
		r.p.stop(syscall.SIGTERM, 10*time.Second)
	}
	return time.Since(start)
}

// TestRestart restarts the plugin mid-stream (auditd's stop sequence: EOF,
// 50 ms, SIGTERM; then a new process on the same state dir) while Kafka is
// up, while it is down (the backlog waits in the disk buffer) and while the
// backlog is being delivered. Nothing may be lost; duplicates come only
// from the batch in flight at each stop, so there are at most batch_size
// (500) per restart. Short: 3 restarts at 1000 events/s; full: 15.
func TestRestart(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	rate := pick(1000, 1000)
	cycles := pick(1, 5)
	phase := 700 * time.Millisecond
	base := loadEvents(t, capturePath(t))
	total := int(phase.Seconds()*float64(rate)) * (3*cycles + 1)
	evs := replicate(t, base, total/len(base)+1)[:total]

	dir := t.TempDir()
	br := newBroker(t, "restart")
	br.start()
	cfg := newConfig(t, dir)
	cfg.add(kafkaSink("kafka", br.addr, "restart", ""))
	r := newRig(t, cfg, dir, evs)

	var stops []time.Duration
	restart := func(why string) {
		d := r.auditdStop()
		stops = append(stops, d)
		t.Logf("restart %d (%s) after %d events: the old process exited %s after EOF", len(stops), why, r.fed, d.Round(time.Millisecond))
		if !r.p.state.Success() {
			t.Errorf("plugin exited with %v; log:\n%s", r.p.state, r.p.logTail())
		}
		r.start()
	}
	for c := 0; c < cycles; c++ {
		r.feedFor(phase, rate)
		restart("broker up")
		r.feedFor(phase, rate)
		br.stop()
		r.feedFor(phase, rate)
		restart("broker down, backlog in the spool")
		br.start()
		// Let the new process start delivering the backlog, then stop it
		// in the middle of that.
		testsupport.Until(10*time.Second, func() bool { return r.p.value("audisp_enrich_sink_acked_total", `sink="kafka"`) > 0 })
		restart("delivering the backlog")
	}
	r.feedRest(rate)
	r.drained("kafka", 60*time.Second)
	r.p.closeInput(5 * time.Second)

	got := parseDocs(t, "kafka", kcat(t, br.addr, "restart"), 50)
	tl := count(idsOf(evs), got.count)
	t.Logf("%d restarts at %d events/s: %s", len(stops), rate, tl)
	if tl.missing > 0 || tl.unexpected > 0 {
		t.Errorf("%d events lost across restarts (e.g. %v), %d unexpected; log:\n%s", tl.missing, tl.missingIDs, tl.unexpected, r.p.logTail())
	}
	if limit := 500 * len(stops); tl.dups > limit {
		t.Errorf("%d duplicates after %d restarts, more than one batch (500) per restart", tl.dups, len(stops))
	}
	for i, d := range stops {
		if d > 2*time.Second {
			t.Errorf("stop %d took %s; auditd waits for the plugin without a timeout", i+1, d)
		}
	}
}

// TestCrash kills the plugin with SIGKILL mid-stream, while the test is
// writing to its stdin at 1000 events/s, and starts it again on the same
// state dir. The
// disk buffer loses nothing that was appended (it is in the page cache);
// what is lost is what the dead process had read but not yet appended,
// plus what sat in its stdin pipe, as when auditd loses the bytes in a dead
// plugin's socket buffer. The loss is measured as events and as time
// before the kill, and must be confined to the last second before it;
// duplicates come from acknowledgements not yet in the ack marker (written
// after each group commit, fsync_interval 200 ms). Every second kill hits
// the plugin while Kafka is down, with a backlog in the spool. Short: 2
// kills; full: 10.
func TestCrash(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	rate := 1000
	kills := pick(2, 10)
	phase := 1500 * time.Millisecond
	base := loadEvents(t, capturePath(t))
	total := int(phase.Seconds()*float64(rate)) * (kills + 1)
	evs := replicate(t, base, total/len(base)+1)[:total]
	ids := idsOf(evs)

	dir := t.TempDir()
	br := newBroker(t, "crash")
	br.start()
	cfg := newConfig(t, dir)
	cfg.add(kafkaSink("kafka", br.addr, "crash", ""))
	r := newRig(t, cfg, dir, evs)
	var killedAt []int
	for k := 0; k < kills; k++ {
		// The feeder writes at the given rate; the kill lands while it
		// is writing. Its next write fails (EPIPE); like auditd, which
		// re-sends the event whose write revealed the dead plugin, the
		// slice that failed is written again to the new process.
		if k%2 == 1 {
			br.stop() // this time the kill hits a process with a backlog
		}
		fed := make(chan int, 1)
		go func() {
			n, _ := r.p.feedPaced(r.evs[r.fed:], rate)
			fed <- n
		}()
		time.Sleep(phase + time.Duration(k%3)*3*time.Millisecond)
		_ = r.p.cmd.Process.Kill()
		<-r.p.exited
		r.fed += <-fed
		killedAt = append(killedAt, r.fed)
		r.start()
		br.start()
	}
	r.feedRest(rate)
	r.drained("kafka", 60*time.Second)
	r.p.closeInput(5 * time.Second)

	got := parseDocs(t, "kafka", kcat(t, br.addr, "crash"), 50)
	tl := count(ids, got.count)
	t.Logf("%d kills at %d events/s: %s", kills, rate, tl)
	// Attribute each lost event to the kill that followed it.
	lost := make([]int, kills)
	window := make([]int, kills) // events between the oldest lost one and the kill
	for i, id := range ids {
		if got.count[id] > 0 {
			continue
		}
		k := 0
		for k < kills && killedAt[k] <= i {
			k++
		}
		if k == kills {
			t.Errorf("event %s (input position %d) lost after the last kill", id, i)
			continue
		}
		lost[k]++
		window[k] = max(window[k], killedAt[k]-i)
	}
	for k := range kills {
		t.Logf("kill %d after %d events: %d events lost, all among the last %d fed (%.0f ms at %d events/s)",
			k+1, killedAt[k], lost[k], window[k], float64(window[k])*1000/float64(rate), rate)
		if window[k] > rate {
			t.Errorf("kill %d lost an event fed %d events (%.1f s) before the kill; the loss must stay within the last second",
				k+1, window[k], float64(window[k])/float64(rate))
		}
	}
	t.Logf("duplicates after %d kills: %d (%.0f per kill)", kills, tl.dups, float64(tl.dups)/float64(kills))
	if tl.unexpected > 0 {
		t.Errorf("%d unexpected events", tl.unexpected)
	}
}

// TestFullBuffer fills a small disk buffer (max_bytes 64 KiB) of a Kafka
// sink whose broker is down, with 936 events (about 1.5 MB of documents),
// under each when_full policy, then starts the broker:
//   - drop_oldest: the oldest documents are dropped and counted; what
//     arrives is exactly the newest suffix of the input;
//   - drop_newest: the newest are refused and counted; what arrives is
//     exactly the oldest prefix;
//   - block: nothing is dropped, the pipeline waits; once the broker is up
//     everything arrives.
//
// Counted drops are read from /metrics (audisp_enrich_sink_dropped_total)
// and must equal the input minus what arrived; the alert documents
// (kind alert) reach a second sink (a file) and their counts add up to the
// drops.
func TestFullBuffer(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	for _, policy := range []string{"drop_oldest", "drop_newest", "block"} {
		t.Run(policy, func(t *testing.T) { fullBuffer(t, policy) })
	}
}

func fullBuffer(t *testing.T, policy string) {
	base := loadEvents(t, capturePath(t))
	evs := replicate(t, base, 4)
	ids := idsOf(evs)
	dir := t.TempDir()
	br := newBroker(t, "full")
	cfg := newConfig(t, dir)
	alertsPath := filepath.Join(dir, "alerts.json")
	cfg.add(kafkaSink("kafka", br.addr, "full", fmt.Sprintf(`[sink.buffer]
type = "disk"
max_bytes = 65536
when_full = %q
[sink.filter]
kinds = ["audit"]
`, policy)))
	cfg.add(fileSink("alerts", alertsPath, "[sink.filter]\nkinds = [\"alert\"]\n"))
	r := newRig(t, cfg, dir, evs)
	if err := r.p.feed(evs); err != nil {
		t.Fatal(err)
	}
	r.fed = len(evs)
	kl := `sink="kafka"`
	published := func() float64 { return r.p.value("audisp_enrich_sink_published_total", kl) }
	if policy == "block" {
		// The pipeline stalls: published stops short of the input.
		var last float64 = -1
		testsupport.Until(10*time.Second, func() bool {
			time.Sleep(500 * time.Millisecond)
			v := published()
			stable := v == last
			last = v
			return stable
		})
	} else if _, ok := r.p.waitMetric(20*time.Second, "audisp_enrich_sink_published_total", []string{kl}, func(v float64) bool { return v >= float64(len(evs)) }); !ok {
		t.Fatalf("published %v of %d documents to the kafka sink; log:\n%s", published(), len(evs), r.p.logTail())
	}
	pub := published()
	dropped := r.p.value("audisp_enrich_sink_dropped_total", kl)
	byPolicy := r.p.value("audisp_enrich_sink_dropped_total", kl, `reason="`+policy+`"`)
	queued := r.p.value("audisp_enrich_sink_queued", kl)
	spool := r.p.value("audisp_enrich_sink_buffer_bytes", kl)
	inDropped := r.p.value("audisp_enrich_input_dropped_records_total")
	t.Logf("%s with the broker down: %d events in, %.0f published to the sink, %.0f queued in %.0f bytes of spool, %.0f dropped (%.0f as %s), %.0f input records dropped",
		policy, len(evs), pub, queued, spool, dropped, byPolicy, policy, inDropped)
	if spool > 65536 {
		t.Errorf("spool holds %.0f bytes, above max_bytes 65536", spool)
	}
	// Alerts are coalesced per reason and second; wait for their counts to
	// add up.
	var alertSum uint64
	var alerts []alertDoc
	readAlerts := func() {
		b, _ := os.ReadFile(alertsPath)
		got := parseDocs(t, "alerts file", splitLines(b), 1)
		alerts, alertSum = got.alerts, 0
		for _, a := range alerts {
			if a.Sink == "kafka" {
				alertSum += a.Count
			}
		}
	}
	testsupport.Until(5*time.Second, func() bool { readAlerts(); return alertSum >= uint64(dropped) })
	t.Logf("%d alert documents in the file sink, counting %d dropped documents", len(alerts), alertSum)

	br.start()
	recovery := r.drained("kafka", 60*time.Second)
	r.p.closeInput(5 * time.Second)
	got := parseDocs(t, "kafka", kcat(t, br.addr, "full"), 10)
	tl := count(ids, got.count)
	pos := positions(ids, got.count)
	t.Logf("after the broker came back (drained in %s): kafka (kcat): %s; %d late documents", recovery.Round(time.Millisecond), tl, got.late)
	if tl.dups > 0 || tl.unexpected > 0 {
		t.Errorf("%d duplicates, %d unexpected", tl.dups, tl.unexpected)
	}
	if inDropped > 0 {
		t.Errorf("the input dropped %v records; the test needs the buffer policy alone to act", inDropped)
	}
	switch policy {
	case "drop_oldest", "drop_newest":
		if dropped == 0 || byPolicy != dropped {
			t.Errorf("dropped %v, %v of them as %s; want drops, all by the policy", dropped, byPolicy, policy)
		}
		if tl.unique+int(dropped) != len(evs) {
			t.Errorf("arrived %d + dropped %.0f != %d events in: a loss was not counted", tl.unique, dropped, len(evs))
		}
		if alertSum != uint64(dropped) {
			t.Errorf("alert documents count %d drops, the metric %v: %+v", alertSum, dropped, alerts)
		}
		for _, a := range alerts {
			if a.Sink != "kafka" || a.Reason != policy {
				t.Errorf("alert %+v, want sink kafka, reason %s", a, policy)
			}
		}
		if len(pos) == 0 {
			t.Fatalf("nothing arrived")
		}
		// A lone record (such as the capture's DAEMON_START) is held for
		// the end-of-event hold before it is published, so it may reach
		// the full buffer after later events: only multi-record events
		// are judged by their input order.
		var multi []int
		for _, p := range pos {
			if len(evs[p].lines) > 1 {
				multi = append(multi, p)
			}
		}
		if policy == "drop_oldest" && len(multi) > 0 {
			suffix := 0
			for i := len(evs) - 1; i >= 0 && (len(evs[i].lines) == 1 || slices.Contains(multi, i)); i-- {
				if len(evs[i].lines) > 1 {
					suffix++
				}
			}
			if suffix != len(multi) {
				t.Errorf("drop_oldest: arrived input positions %v, want the newest suffix ..%d", pos, len(evs)-1)
			}
		}
		if policy == "drop_newest" {
			// Every event up to the first refused one arrived; after
			// that only a document small enough for the space left can
			// still get in.
			// A lone record (such as the capture's DAEMON_START) is held
			// for the end-of-event hold before it is published, so it
			// may reach the full buffer after later events: only
			// multi-record events are judged by their input order.
			arrived := map[int]bool{}
			for _, p := range pos {
				arrived[p] = true
			}
			prefix, later := 0, 0
			inPrefix := true
			for i, ev := range evs {
				if len(ev.lines) == 1 {
					continue
				}
				switch {
				case inPrefix && arrived[i]:
					prefix++
				case arrived[i]:
					later++
				default:
					inPrefix = false
				}
			}
			t.Logf("drop_newest: the oldest %d multi-record events arrived, then %d later smaller ones that still fitted", prefix, later)
			if prefix == 0 || later > prefix {
				t.Errorf("drop_newest: arrived input positions %v, want mostly the oldest prefix", pos)
			}
		}
	case "block":
		if dropped != 0 || len(alerts) != 0 {
			t.Errorf("block dropped %v documents and sent %d alerts; want none", dropped, len(alerts))
		}
		if pub >= float64(len(evs)) {
			t.Errorf("block: all %d documents were published while the buffer was full; the pipeline did not wait", len(evs))
		}
		if tl.missing > 0 {
			t.Errorf("block: %d events lost (e.g. %v)", tl.missing, tl.missingIDs)
		}
	}
}

// TestBlockedStop stops the plugin the way auditd does (EOF, 50 ms,
// SIGTERM) while a when_full = "block" buffer is full and its broker is
// down. auditd waits for the plugin with no timeout, so the plugin must
// still exit within its shutdown grace (about 1 s).
func TestBlockedStop(t *testing.T) {
	testsupport.SkipShort(t, "real peers (rsyslogd, kfake + kcat, auditd) and the plugin binary; long")
	evs := replicate(t, loadEvents(t, capturePath(t)), 4)
	dir := t.TempDir()
	br := newBroker(t, "blocked")
	cfg := newConfig(t, dir)
	cfg.add(kafkaSink("kafka", br.addr, "blocked", "[sink.buffer]\ntype = \"disk\"\nmax_bytes = 65536\nwhen_full = \"block\"\n"))
	r := newRig(t, cfg, dir, evs)
	if err := r.p.feed(evs); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.p.waitMetric(10*time.Second, "audisp_enrich_sink_queued", []string{`sink="kafka"`}, func(v float64) bool { return v > 0 }); !ok {
		t.Fatal("nothing queued")
	}
	time.Sleep(time.Second)
	pub := r.p.value("audisp_enrich_sink_published_total", `sink="kafka"`)
	if pub >= float64(len(evs)) {
		t.Fatalf("all %d documents published; the buffer never filled", len(evs))
	}
	start := time.Now()
	r.p.stdin.Close()
	select {
	case <-r.p.exited:
	case <-time.After(50 * time.Millisecond):
		_ = r.p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-r.p.exited:
		t.Logf("blocked plugin (%.0f of %d published) exited %s after EOF", pub, len(evs), time.Since(start).Round(time.Millisecond))
		// What was still queued in the pipeline is counted under its own
		// reason and logged at exit.
		m := regexp.MustCompile(`documents still queued at shutdown were lost" sink=kafka count=([0-9]+) reason=shutdown`).FindStringSubmatch(readFile(t, r.p.log))
		if m == nil {
			t.Errorf("no log line counts the documents still queued at shutdown; log:\n%s", r.p.logTail())
		} else {
			t.Logf("%s documents still queued at shutdown, counted as shutdown", m[1])
		}
		if f := regexp.MustCompile(`records still queued at shutdown were not processed" count=([0-9]+)`).FindStringSubmatch(readFile(t, r.p.log)); f != nil {
			t.Logf("%s input records still queued at shutdown, counted", f[1])
		}
		if f := regexp.MustCompile(`report=final .*`).FindString(readFile(t, r.p.log)); f != "" {
			t.Logf("final status: %s", f)
		}
	case <-time.After(5 * time.Second):
		// Ask the Go runtime for its goroutine dump (SIGQUIT) to show
		// where shutdown waits.
		_ = r.p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-r.p.exited:
		case <-time.After(3 * time.Second):
		}
		t.Errorf("blocked plugin (%.0f of %d published) did not exit within 5 s of EOF and SIGTERM: auditd would hang in waitpid.\nWhere its goroutines wait (from the SIGQUIT dump):\n%s",
			pub, len(evs), stackSummary(r.p.log))
	}
}

// stackSummary picks the module's frames out of a Go goroutine dump in
// the log at path, one goroutine per paragraph.
func stackSummary(path string) string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, g := range strings.Split(string(b), "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") {
			continue
		}
		lines := strings.Split(g, "\n")
		keep := []string{lines[0]}
		for _, l := range lines[1:] {
			if strings.Contains(l, "audisp-enrich/") && !strings.HasPrefix(l, "\t") {
				keep = append(keep, "  "+l)
			}
		}
		if len(keep) > 1 {
			out = append(out, strings.Join(keep, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
