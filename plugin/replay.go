package plugin

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// ReplayOptions are where replay reads stdin and reports to the user.
type ReplayOptions struct {
	// Stdin is read for the file "-".
	Stdin io.Reader
	// Warn is called, as it happens, with "FILE: reason" for each file
	// that cannot be read or fails part way; replay goes on with the next.
	Warn func(error)
	// Progress, when not nil (a terminal), gets a progress line for each
	// file larger than ProgressMinBytes, rewritten in place about four
	// times a second and left with its final figures.
	Progress io.Writer
	// Counts, when not nil, is given the run's input figures at the end
	// (also of an interrupted run), once the pipeline is closed; when
	// nil, replay logs them (INFO "replay input").
	Counts func(ReplayCounts)
}

// ReplayCounts are what replay made of its input: every line read is
// parsed into a record or rejected, so Lines = Records + the sum of
// Rejected (of the files read to their end: an interrupted run stops
// counting lines where its last file was). Flagged lines were processed
// all the same, each also counted as a record or rejected.
type ReplayCounts struct {
	Lines   int64
	Records uint64
	Tally
}

// ProgressMinBytes is the size from which a file gets a progress line.
const ProgressMinBytes = 4 << 20

// ErrFilesFailed is returned by Replay when some files could not be read
// (each was passed to ReplayOptions.Warn); the others were replayed.
var ErrFilesFailed = errors.New("some files could not be read")

// Replay runs audit.log files (plain or gzip; "-" is stdin; none is
// stdin) through the pipeline with record-time semantics, in order, then
// flushes. A file that cannot be read is reported and skipped. When ctx
// is cancelled (also while the input is idle) it stops reading and
// returns ctx.Err(): what the sinks got stays written, events not yet
// complete are dropped.
func Replay(ctx context.Context, cfg *conf.Config, log *slog.Logger, files []string, opt ReplayOptions) error {
	p, err := NewPipeline(cfg, log, metrics.Default, true)
	if err != nil {
		return err
	}
	// Replay waits for the sinks to deliver (until interrupted, or until a
	// sink stalls; see runnerSink.stop). Closing reports what the error
	// log suppressed last; the counts follow.
	var lines int64
	defer func() {
		p.Close(ctx)
		reportCounts(ReplayCounts{Lines: lines, Records: p.records, Tally: p.errlog.tally()}, opt, log)
	}()
	if err := p.enr.waitPackages(ctx, log, opt.Progress); err != nil {
		return err
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	failed := false
	for _, f := range files {
		err := replayFile(ctx, p, f, opt, cfg.Input.MaxLineBytes, &lines)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failed = true
			if opt.Warn != nil {
				opt.Warn(err)
			}
		}
	}
	// The events still open or held (a lone record at the end of the
	// input) go to the pool now, so that their lookups are settled too.
	p.reasm.Flush()
	p.settleLookups(ctx)
	if failed {
		return ErrFilesFailed
	}
	return nil
}

// SettleTimeout bounds how long replay waits at the end for VirusTotal
// lookups (see settleLookups); FleetSettleTimeout for the fleet's
// verdicts, which make a round trip through Kafka and the verdict service.
const (
	SettleTimeout      = 2 * time.Second
	FleetSettleTimeout = 15 * time.Second
)

// settleLookups waits, at most SettleTimeout (FleetSettleTimeout with
// [enrich.fleet]), until the VirusTotal enricher has looked up every
// queued hash, or the fleet host has the verdict of every pending hash, so
// that the verdict documents that can come at once are written before the
// pipeline closes. It first waits for a pool barrier, so every event
// submitted so far has passed VirusTotal (and queued its hashes) before
// the queue is watched; on a busy machine the pool may still hold events
// when the input ends.
func (p *Pipeline) settleLookups(ctx context.Context) {
	p.mu.Lock()
	enr, pool := p.enr, p.pool
	p.mu.Unlock()
	if enr == nil || (enr.vt == nil && enr.fleet == nil) {
		return
	}
	var s interface{ Settle(context.Context) } = enr.vt
	timeout := SettleTimeout
	if enr.vt == nil {
		s, timeout = enr.fleet, FleetSettleTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	passed := make(chan struct{})
	pool.Barrier(func() { close(passed) })
	select {
	case <-passed:
	case <-ctx.Done():
		return
	}
	s.Settle(ctx)
}

// reportCounts gives c to opt.Counts, or logs it.
func reportCounts(c ReplayCounts, opt ReplayOptions, log *slog.Logger) {
	if opt.Counts != nil {
		opt.Counts(c)
		return
	}
	log.Info("replay input", "lines", c.Lines, "records", c.Records,
		"rejected", ByCount(c.Rejected), "flagged", ByCount(c.Flagged))
}

// ByCount writes the counts of m as "total: name n, name n", the largest
// first ("0" when there are none).
func ByCount[N int | uint64](m map[string]N) string {
	var total N
	names := make([]string, 0, len(m))
	for k, n := range m {
		names = append(names, k)
		total += n
	}
	if total == 0 {
		return "0"
	}
	slices.SortFunc(names, func(a, b string) int {
		if m[a] != m[b] {
			return cmp.Compare(m[b], m[a])
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
}

// replayFile runs one file; its error reads "NAME: reason". Each line it
// rejects is logged with file=NAME and its line= number in the file. It
// adds the lines it read to *lines once the file was read to its end.
func replayFile(ctx context.Context, p *Pipeline, name string, opt ReplayOptions, maxLine int, lines *int64) error {
	r, size, closeFn, err := openLog(name, opt.Stdin)
	if err != nil {
		return err
	}
	defer closeFn()
	rd, err := NewReader(r, FramingString, maxLine, NewInputStats(metrics.Default), func(e *InputError) {
		p.inputError(e, name)
	})
	if err != nil {
		return err
	}
	var records atomic.Uint64
	if opt.Progress != nil && size.total > ProgressMinBytes {
		stop := showProgress(opt.Progress, name, size, &records, p.events)
		defer stop()
	}
	ch := make(chan Batch, 4)
	errc := make(chan error, 1)
	go func() { errc <- rd.RunBlocking(ch); close(ch) }()
	// The cancel is watched while the input is idle too (a pipe or a
	// terminal that sends nothing); the reading goroutine is then left
	// blocked in its read, which the process's exit ends.
	for {
		var batch Batch
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case batch, ok = <-ch:
		}
		if !ok {
			break
		}
		p.handleBatch(batch, name)
		records.Add(uint64(len(batch.Lines)))
	}
	err = <-errc
	*lines += rd.line // the reader is done: errc is sent after its last read
	if err != nil {
		// [input] format does not apply to replay, which reads text only:
		// its own words instead of the plugin's advice.
		if fm := (*FormatMismatchError)(nil); errors.As(err, &fm) {
			return fmt.Errorf("%s: not an audit.log text file: it begins with a binary audit dispatcher frame "+
				"(a plugin stream of plugins.d format = binary); replay reads text logs only", name)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// readSize is how much of a file has been read, of its total size.
type readSize struct {
	total int64
	read  *atomic.Int64
}

type byteCounter struct {
	r io.Reader
	n *atomic.Int64
}

func (c byteCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// showProgress writes name's progress line to w now, then every 250 ms;
// the function it returns writes the final figures and ends the line.
func showProgress(w io.Writer, name string, size readSize, records *atomic.Uint64, events *metrics.Counter) func() {
	start := time.Now()
	line := func() {
		read, secs := size.read.Load(), time.Since(start).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(records.Load()) / secs
		}
		fmt.Fprintf(w, "\r%s: %s of %s (%d%%), %.0f records/s, %d events out\x1b[K",
			name, mib(read), mib(size.total), read*100/max(size.total, 1), rate, events.Value())
	}
	line()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		line()
		fmt.Fprintln(w)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// openLog opens an audit log for replay: "-" is stdin; a gzip file is
// recognised by its magic bytes, whatever its name. A directory is
// refused with a hint. Errors read "NAME: reason". The size is that of
// the file as stored (0 for stdin); read counts the bytes taken from it.
func openLog(name string, stdin io.Reader) (io.Reader, readSize, func(), error) {
	size := readSize{read: new(atomic.Int64)}
	var r io.Reader = stdin
	closeFn := func() {}
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, size, nil, fmt.Errorf("%s: %w", name, err)
		}
		st, err := f.Stat()
		if err == nil && st.IsDir() {
			f.Close()
			return nil, size, nil, fmt.Errorf("%s: is a directory; replay reads log files (such as %s)", name, filepath.Join(name, "audit.log*"))
		}
		if err == nil && st.Mode().IsRegular() {
			size.total = st.Size()
		}
		r, closeFn = byteCounter{f, size.read}, func() { f.Close() }
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, size, nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr, size, closeFn, nil
	}
	return br, size, closeFn, nil
}
