package buffer

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Spool operations a fault is counted under (the op label).
const (
	OpWrite  = "write"  // appending records to the head segment
	OpCreate = "create" // creating a new head segment
	OpSync   = "sync"   // fdatasync of the head, fsync of the directory
	OpMarker = "marker" // rewriting the ack marker
	OpRemove = "remove" // deleting a finished segment
	OpRotate = "rotate" // sealing a full head segment
)

// errnoNames are the causes named in fault log lines and metric labels;
// any other errno is named errno_N, an error without one "other".
var errnoNames = map[syscall.Errno]string{
	syscall.ENOSPC: "ENOSPC", syscall.EDQUOT: "EDQUOT", syscall.EMFILE: "EMFILE",
	syscall.ENFILE: "ENFILE", syscall.EIO: "EIO", syscall.EROFS: "EROFS",
	syscall.EACCES: "EACCES", syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT",
	syscall.EFBIG: "EFBIG", syscall.ENOMEM: "ENOMEM", syscall.EINVAL: "EINVAL",
	syscall.EBADF: "EBADF", syscall.EEXIST: "EEXIST", syscall.ENOTDIR: "ENOTDIR",
}

// errCause names the system error behind err, e.g. "ENOSPC".
func errCause(err error) string {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return "other"
	}
	if name, ok := errnoNames[en]; ok {
		return name
	}
	return fmt.Sprintf("errno_%d", int(en))
}

// rateLog decides when a keyed log line is due: the first event of a key
// at once, later ones summed into at most one line per interval (every,
// default 1 s), the rest when taken with pending.
type rateLog struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	pend  map[string]int
}

// note adds n events of key. It returns the sum to log now and true when a
// line is due.
func (l *rateLog) note(key string, n int) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.pend = map[string]time.Time{}, map[string]int{}
	}
	every := l.every
	if every == 0 {
		every = time.Second
	}
	sum := l.pend[key] + n
	if time.Since(l.last[key]) < every {
		l.pend[key] = sum
		return 0, false
	}
	l.pend[key] = 0
	l.last[key] = time.Now()
	return sum, true
}

// pending returns and clears the sums held back, by key.
func (l *rateLog) pending() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, n := range l.pend {
		if n > 0 {
			out[k] = n
		}
		delete(l.pend, k)
	}
	return out
}

// faults counts and logs spool I/O errors by operation and cause: a
// counter audisp_enrich_buffer_faults_total{sink,op,cause} (when Options
// carry a registry) and an ERROR line at most every 10 s per op and cause,
// naming the cause, the file and how many occurred since the last line.
type faults struct {
	sink   string
	reg    *metrics.Registry
	log    *slog.Logger
	rl     rateLog
	mu     sync.Mutex
	counts map[string]uint64 // "op/cause"
	labels []string          // registered label sets, for unregister
}

const faultMetric = "audisp_enrich_buffer_faults_total"

func newFaults(sink string, reg *metrics.Registry, log *slog.Logger) *faults {
	return &faults{sink: sink, reg: reg, log: log, rl: rateLog{every: 10 * time.Second}, counts: map[string]uint64{}}
}

// add records one failed op on file. It returns the cause.
func (f *faults) add(op, file string, err error) string {
	cause := errCause(err)
	key := op + "/" + cause
	f.mu.Lock()
	f.counts[key]++
	if f.reg != nil {
		l := metrics.Label("sink", f.sink) + "," + metrics.Label("op", op) + "," + metrics.Label("cause", cause)
		if f.counts[key] == 1 {
			f.labels = append(f.labels, l)
		}
		f.reg.Counter(faultMetric, l, "Spool I/O errors of disk buffers, by operation and cause.").Inc()
	}
	f.mu.Unlock()
	if n, due := f.rl.note(key, 1); due {
		f.log.Error("spool I/O failed; retrying", "op", op, "cause", cause, "file", file, "err", err, "count", n)
	}
	return cause
}

// count returns how often op failed with cause.
func (f *faults) count(op, cause string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op+"/"+cause]
}

// close logs what the rate limit held back and unregisters the counters.
func (f *faults) close() {
	for key, n := range f.rl.pending() {
		f.log.Error("spool I/O failed", "op_cause", key, "count", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.labels {
		f.reg.Unregister(faultMetric, l)
	}
}
