package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// status writes the periodic report and the SIGUSR1 state dump.
type status struct {
	p     *Pipeline
	in    *InputStats
	cfg   *conf.Config
	log   *slog.Logger
	last  time.Time
	start time.Time
}

func newStatus(p *Pipeline, in *InputStats, cfg *conf.Config, log *slog.Logger) *status {
	now := time.Now()
	return &status{p: p, in: in, cfg: cfg, log: log, last: now, start: now}
}

func (s *status) tick(now time.Time) {
	if s.cfg.Status.Interval > 0 && now.Sub(s.last) >= s.cfg.Status.Interval {
		s.last = now
		s.report("periodic")
	}
}

// report logs the main figures in one line.
func (s *status) report(kind string) {
	st := s.p.Stats()
	var parseErrs uint64
	for _, c := range s.p.badLines {
		parseErrs += c.Value()
	}
	tally := s.p.errlog.tally()
	s.log.Info("status", "report", kind,
		"records", s.in.Lines.Value(), "events", s.p.events.Value(),
		"parse_errors", parseErrs, "rejected", Total(tally.Rejected), "flagged", Total(tally.Flagged),
		"lost_hint", s.p.reasm.LostHint(),
		"evicted", st.Evicted, "timed_out", st.TimedOut, "late", st.Late, "in_flight", st.InFlight,
		"queue", s.in.QueueLen.Value(), "queue_high", s.in.QueueHigh.Value(),
		"input_dropped", s.in.Dropped.Value(), "uptime", time.Since(s.start).Round(time.Second).String())
	if ps, ok := s.p.packageStats(); ok {
		last := ""
		if !ps.LastRefresh.IsZero() {
			last = ps.LastRefresh.UTC().Format(time.RFC3339)
		}
		s.log.Info("packages status", "report", kind, "files", ps.Files, "hashed", ps.Reused+ps.Hashed,
			"pending", ps.Pending, "modified", ps.Modified, "live_bytes", ps.LiveBytes, "last_refresh", last)
	}
	for _, st := range s.p.SinkStats() {
		var dropped uint64
		for _, n := range st.Dropped {
			dropped += n
		}
		s.log.Info("sink status", "report", kind, "sink", st.Sink, "connected", st.Connected,
			"queued", st.Queued, "in_flight", st.InFlight, "acked", st.Acked, "retried", st.Retried,
			"dropped", dropped, "buffer_bytes", st.BufferBytes, "oldest_age", st.OldestAge.Round(time.Millisecond).String(),
			"last_error", st.LastError)
	}
}

// dump writes every metric to STATE_DIR/state.json (SIGUSR1) and logs a report.
func (s *status) dump() {
	s.report("sigusr1")
	snap := metrics.Default.Snapshot()
	keys := make([]string, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type kv struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
	}
	doc := struct {
		Time    string              `json:"time"`
		PID     int                 `json:"pid"`
		Sinks   []sinks.RunnerStats `json:"sinks,omitempty"`
		Metrics []kv                `json:"metrics"`
	}{Time: time.Now().UTC().Format(time.RFC3339), PID: os.Getpid(), Sinks: s.p.SinkStats()}
	for _, k := range keys {
		doc.Metrics = append(doc.Metrics, kv{k, snap[k]})
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	path := filepath.Join(s.cfg.StateDir, "state.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		s.log.Error("state dump failed", "path", path, "err", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		s.log.Error("state dump failed", "path", path, "err", err)
		return
	}
	s.log.Info("state dumped", "path", path)
}

// PrintStats prints the live figures of the running plugin: it scrapes the
// metrics listener when one is configured, else it asks the plugin for a
// state dump (SIGUSR1 to the pid in STATE_DIR/audisp-enrich.pid) and
// prints it.
func PrintStats(cfg *conf.Config, w io.Writer) error {
	if cfg.Status.Listen != "" {
		return scrape(cfg.Status.Listen, w)
	}
	pidFile := filepath.Join(cfg.StateDir, PidFileName)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("no running plugin found (%v); set [status] listen for live metrics", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: bad pid: %v", pidFile, err)
	}
	if err := checkPluginPid(pid); err != nil {
		return fmt.Errorf("%s: stale (%w)", pidFile, err)
	}
	statePath := filepath.Join(cfg.StateDir, "state.json")
	before, _ := os.Stat(statePath)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("%s: signal plugin pid %d: %w", pidFile, pid, err)
	}
	for i := 0; i < 40; i++ {
		time.Sleep(50 * time.Millisecond)
		if st, err := os.Stat(statePath); err == nil && (before == nil || st.ModTime().After(before.ModTime())) {
			b, err := os.ReadFile(statePath)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}
	}
	return fmt.Errorf("plugin pid %d did not write %s within 2s", pid, statePath)
}

// checkPluginPid returns an error unless pid is a running audisp-enrich,
// so that a stale pid file whose pid was reused never makes stats signal
// (and, SIGUSR1's default action, end) an unrelated process. It reads
// /proc/PID/comm, the name the process was started under: anyone can read
// it, whatever user the plugin dropped to, and it stays the same when the
// binary is upgraded or deleted under the running plugin (its exe link
// then ends in " (deleted)").
func checkPluginPid(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pid %d does not exist", pid)
		}
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	if strings.TrimSuffix(string(b), "\n") != progName {
		return fmt.Errorf("pid %d is not %s", pid, progName)
	}
	return nil
}

// progName is the plugin's process name (its /proc/PID/comm).
const progName = "audisp-enrich"

// PidFileName is the plugin's pid file in the state dir.
const PidFileName = "audisp-enrich.pid"

func scrape(listen string, w io.Writer) error {
	resp, err := getMetrics(listen)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// getMetrics fetches /metrics from a "HOST:PORT" or "unix:PATH" listener;
// a status other than 200 is an error. The caller closes the body.
func getMetrics(listen string) (*http.Response, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + listen + "/metrics"
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}
		url = "http://unix/metrics"
	}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp, nil
}
