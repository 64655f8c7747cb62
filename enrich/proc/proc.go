// Package proc keeps a bounded process table fed by exec events and sets the
// parent process of every event from it.
//
// The table maps a pid to the program images it ran, learnt from successful
// execve/execveat events (SYSCALL + EXECVE records). A pid keeps its number
// across exec, so each exec replaces the image of its pid; the image before
// it is kept too, so that an event stamped before the exec, but enriched
// after it (the pool runs events in parallel), still finds the parent as it
// was at the event's time. Processes started before the plugin are read from
// /proc/<pid> on a table miss (when enabled); that result and "no such
// process" are cached in the table as well.
//
// The parent is best-effort: the table cannot see exits, and a child's event
// enriched before its parent's exec event falls back to /proc.
package proc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Config configures the process table ([proc] in the config file).
type Config struct {
	// Enabled switches the enricher on (default true). The runtime reads it;
	// New builds a table either way.
	Enabled bool `toml:"enabled"`
	// MaxEntries bounds the number of pids held (default 16384, 1..16777216).
	// The least recently used pid is evicted first; a table of 8192
	// entries or more is split by pid into 8 shards of an eighth each,
	// and each evicts its own least recently used pid.
	MaxEntries int `toml:"max_entries"`
	// ProcFallback reads /proc/<ppid> for parents the table does not know
	// (default true). Turn it off when replaying logs from another time or
	// host, where /proc describes unrelated processes.
	ProcFallback bool `toml:"proc_fallback"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Enabled: true, MaxEntries: 16384, ProcFallback: true}
}

// Validate reports the first invalid option.
func (c *Config) Validate() error {
	if c.MaxEntries < 1 || c.MaxEntries > 1<<24 {
		return fmt.Errorf("proc: max_entries %d out of range 1..16777216", c.MaxEntries)
	}
	return nil
}

// Source says where an Image was learnt.
type Source uint8

const (
	// SourceExec is an image from an exec event.
	SourceExec Source = iota + 1
	// SourceProc is an image read from /proc; its StartMilli is the process
	// start (fork) to one second, and its AUID is empty.
	SourceProc
)

// Image is a program a pid ran. All strings are owned (they do not pin the
// event they came from); Args must not be modified.
type Image struct {
	Exe  string
	Args []string // at most 64 arguments and 4 KiB
	UID  string   // numeric, as logged
	AUID string   // numeric, as logged
	PPID int
	// StartMilli is when the image started: the exec event's time, in unix
	// milliseconds.
	StartMilli int64
	Source     Source
}

// entry is what the table holds for one pid: up to two images, newest
// first, or a cached miss.
type entry struct {
	img     [2]*stored
	n       int   // images held (0 for a cached miss)
	expires int64 // unix ms after which a cached miss is forgotten
}

// stored is an image as the table holds it: immutable once stored. Its
// Process is the Parent that the events of its children get (shared by
// all of them); the rest is what lookups need.
type stored struct {
	parent     audit.Process
	auid       string
	ppid       int
	startMilli int64
	source     Source
	argv       [6]string // room for a short argv (parent.Args)
	// text is room for the bytes of parent's strings and auid when they
	// fit (the usual exec), so that an exec costs one allocation.
	text [textRoom]byte
}

// textRoom makes stored 320 bytes, a size class of Go's allocator.
const textRoom = 112

// newStored wraps img, an image of pid.
func newStored(pid int, img Image) *stored {
	return &stored{
		parent: audit.Process{PID: pid, Executable: img.Exe, Args: img.Args, UID: img.UID, StartSec: img.StartMilli / 1000},
		auid:   img.AUID, ppid: img.PPID, startMilli: img.StartMilli, source: img.Source,
	}
}

// image returns s as an Image.
func (s *stored) image() Image {
	return Image{Exe: s.parent.Executable, Args: s.parent.Args, UID: s.parent.UID, AUID: s.auid,
		PPID: s.ppid, StartMilli: s.startMilli, Source: s.source}
}

// missTTL is how long "no such process in /proc" is remembered. Pids are
// reused only after the kernel's pid space wraps, so a minute is safe.
const missTTL = time.Minute

// procSlack covers the one-second precision of /proc start times.
const procSlack = 1000

// maxProcReaders bounds how many enrich calls read /proc at once. Reading
// /proc/<pid>/cmdline can block on the target's memory map lock; the bound
// keeps such a stall from taking every worker.
const maxProcReaders = 2

// Stats are the table's own counts since New.
type Stats struct {
	Len       int    // pids held now
	Execs     uint64 // exec events recorded
	Evictions uint64 // pids evicted for room
	FromTable uint64 // parents found in the table
	FromProc  uint64 // parents read from /proc
	Unknown   uint64 // parents not found
	ProcErrs  uint64 // /proc reads that failed for another reason than exit
}

// shared are the registry's counters of the "proc" enricher; every Table
// built with the same registry adds to them (a reload continues them).
type shared struct {
	execs, evictions, fromTable, fromProc, unknown, procErrs *metrics.Counter
}

func sharedCounters(reg *metrics.Registry) shared {
	if reg == nil {
		reg = metrics.Default
	}
	return shared{
		execs:     reg.Counter("audisp_enrich_proc_execs_total", "", "Exec events recorded in the process table."),
		evictions: reg.Counter("audisp_enrich_proc_evictions_total", "", "Pids evicted from the process table for room."),
		fromTable: reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="table"`, "Parent lookups by outcome."),
		fromProc:  reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="proc"`, "Parent lookups by outcome."),
		unknown:   reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="unknown"`, "Parent lookups by outcome."),
		procErrs:  reg.Counter("audisp_enrich_proc_read_errors_total", "", "Reads of /proc that failed for another reason than the process having exited."),
	}
}

// Table is the process table and the "proc" enricher. It is safe for
// concurrent use.
type Table struct {
	fs  *procFS // nil without ProcFallback
	sem chan struct{}
	now func() time.Time

	// shards split the pids (by pid modulo their number), each with its
	// own lock and LRU, so that workers seldom wait on, or move the cache
	// line of, one another's lock. A small table has one shard.
	shards []shard

	execs, evictions, fromTable, fromProc, unknown, procErrs metrics.Counter
	m                                                        shared
}

// shard is one lock and LRU of a Table, padded to its own cache lines.
type shard struct {
	mu  sync.Mutex
	lru *pidLRU
	_   [48]byte
}

// maxShards is the number of shards of a table of at least
// minShardEntries*maxShards entries; smaller tables have one.
const (
	maxShards       = 8
	minShardEntries = 1024
)

// shardOf returns the shard of pid.
func (t *Table) shardOf(pid int) *shard {
	return &t.shards[uint(pid)%uint(len(t.shards))]
}

var _ enrich.Enricher = (*Table)(nil)

// New returns an empty table. With ProcFallback it reads the boot time from
// /proc/stat and fails when it cannot. Its counters are registered in reg
// (nil: metrics.Default); tables built later with the same registry (a
// reload) continue them.
func New(cfg Config, reg *metrics.Registry) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Table{now: time.Now, sem: make(chan struct{}, maxProcReaders), m: sharedCounters(reg)}
	n := 1
	if cfg.MaxEntries >= minShardEntries*maxShards {
		n = maxShards
	}
	t.shards = make([]shard, n)
	for i := range t.shards {
		// The shards' capacities add up to MaxEntries.
		t.shards[i].lru = newPidLRU((cfg.MaxEntries+n-1-i)/n, n)
	}
	if cfg.ProcFallback {
		var err error
		if t.fs, err = newProcFS("/proc"); err != nil {
			return nil, fmt.Errorf("proc: proc_fallback: %w", err)
		}
	}
	return t, nil
}

// Name returns "proc".
func (t *Table) Name() string { return "proc" }

// Enrich records ev's exec, if it is one, then sets ev.Parent from the
// parent pid of ev's SYSCALL (or INTEGRITY_RULE) record as it was at the
// event's time. It leaves ev.Parent nil when the parent is unknown. The
// error, if any, is a /proc read failure or ctx ending while waiting for a
// /proc reader slot.
func (t *Table) Enrich(ctx context.Context, ev *audit.Event) error {
	if ev.Kind != audit.KindAudit {
		return nil
	}
	sum := audit.SummaryOf(ev)
	at := ev.ID.Sec*1000 + int64(ev.ID.Msec)
	ppid, err := strconv.Atoi(sum.PPID)
	if err != nil {
		ppid = 0
	}
	if sum.Exec {
		t.recordExec(sum, ppid, at)
	}
	if !validPid(ppid) {
		return nil
	}
	img, err := t.parent(ctx, ppid, at)
	if img != nil {
		ev.Parent = &img.parent
	}
	return err
}

// recordExec stores the new image of the pid that exec'd, from the exec
// event's summary (ppid already parsed from it).
func (t *Table) recordExec(sum *audit.Summary, ppid int, at int64) {
	pid, err := strconv.Atoi(sum.PID)
	if err != nil || !validPid(pid) {
		return
	}
	s := &stored{ppid: ppid, startMilli: at, source: SourceExec}
	// One buffer holds exe, uid, auid and argv, so the entry does not pin
	// the event's lines.
	f := [3]string{sum.Exe, sum.UID, sum.AUID}
	room := s.argv[:0]
	if len(sum.Args) > len(s.argv) {
		room = make([]string, 0, min(len(sum.Args), maxArgs))
	}
	args := ownCopy(f[:], sum.Args, room, s.text[:])
	if len(args) == 0 {
		args = nil
	}
	s.parent = audit.Process{PID: pid, Executable: f[0], Args: args, UID: f[1], StartSec: at / 1000}
	s.auid = f[2]
	t.store(pid, s)
	t.execs.Inc()
	t.m.execs.Inc()
}

// Record stores img as an image of pid. The table keeps the two latest
// images of each pid by StartMilli, whatever order they are recorded in.
// img's strings and Args must not be modified afterwards.
func (t *Table) Record(pid int, img Image) {
	t.store(pid, newStored(pid, img))
}

func (t *Table) store(pid int, img *stored) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.lru.Update(pid, func(old entry, ok bool) (entry, bool) { return withImage(old, ok, img), true }) {
		t.evictions.Inc()
		t.m.evictions.Inc()
	}
}

// withImage returns the entry of a pid once img is recorded: the two
// latest images by start time.
func withImage(old entry, ok bool, img *stored) entry {
	e := entry{img: [2]*stored{img}, n: 1}
	if !ok || old.n == 0 {
		return e
	}
	e.n = 2
	switch {
	case img.startMilli >= old.img[0].startMilli:
		e.img[1] = old.img[0]
	case old.n == 1 || img.startMilli >= old.img[1].startMilli:
		e.img = [2]*stored{old.img[0], img}
	default: // older than both: keep the two we have
		e.img = old.img
	}
	return e
}

// Lookup returns the image pid was running at unix millisecond at (the
// latest one when at is 0), from the table only.
func (t *Table) Lookup(pid int, at int64) (Image, bool) {
	img, st := t.lookup(pid, at)
	if st != found {
		return Image{}, false
	}
	return img.image(), true
}

type lookupState uint8

const (
	absent    lookupState = iota // not in the table
	found                        // image valid at the time
	knownMiss                    // cached: not in /proc either
	tooNew                       // every image held started after the time
)

func (t *Table) lookup(pid int, at int64) (*stored, lookupState) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.lru.Get(pid)
	if !ok {
		return nil, absent
	}
	if e.n == 0 {
		if t.now().UnixMilli() < e.expires {
			return nil, knownMiss
		}
		sh.lru.Remove(pid)
		return nil, absent
	}
	for _, img := range e.img[:e.n] {
		slack := int64(0)
		if img.source == SourceProc {
			slack = procSlack
		}
		if at == 0 || img.startMilli-slack <= at {
			return img, found
		}
	}
	return nil, tooNew
}

// parent finds the image of ppid at time at: in the table, else in /proc.
// It returns nil when the parent is unknown.
func (t *Table) parent(ctx context.Context, ppid int, at int64) (*stored, error) {
	img, st := t.lookup(ppid, at)
	switch {
	case st == found:
		t.count(&t.fromTable, t.m.fromTable)
		return img, nil
	case st != absent || t.fs == nil:
		t.count(&t.unknown, t.m.unknown)
		return nil, nil
	}
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		t.count(&t.unknown, t.m.unknown)
		return nil, fmt.Errorf("proc: waiting to read /proc/%d: %w", ppid, ctx.Err())
	}
	read, err := t.fs.read(ppid)
	<-t.sem
	switch {
	case errors.Is(err, errGone):
		t.storeMiss(ppid)
		t.count(&t.unknown, t.m.unknown)
		return nil, nil
	case err != nil:
		t.count(&t.unknown, t.m.unknown)
		t.count(&t.procErrs, t.m.procErrs)
		return nil, fmt.Errorf("proc: %w", err)
	}
	img = newStored(ppid, read)
	t.storeProc(ppid, img)
	if img.startMilli-procSlack > at {
		// The pid now belongs to a process younger than the event.
		t.count(&t.unknown, t.m.unknown)
		return nil, nil
	}
	t.count(&t.fromProc, t.m.fromProc)
	return img, nil
}

// storeProc caches an image read from /proc unless an exec image of the pid
// was recorded meanwhile (exec images are more precise).
func (t *Table) storeProc(pid int, img *stored) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.lru.Update(pid, func(old entry, ok bool) (entry, bool) {
		return entry{img: [2]*stored{img}, n: 1}, !ok || old.n == 0
	}) {
		t.evictions.Inc()
		t.m.evictions.Inc()
	}
}

// storeMiss caches that pid is not in /proc, unless it was recorded meanwhile.
func (t *Table) storeMiss(pid int) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	expires := t.now().Add(missTTL).UnixMilli()
	if sh.lru.Update(pid, func(old entry, ok bool) (entry, bool) {
		return entry{expires: expires}, !ok || old.n == 0
	}) {
		t.evictions.Inc()
		t.m.evictions.Inc()
	}
}

func (t *Table) count(own, global *metrics.Counter) {
	own.Inc()
	global.Inc()
}

// Stats returns the table's counts.
func (t *Table) Stats() Stats {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return Stats{
		Len:       n,
		Execs:     t.execs.Value(),
		Evictions: t.evictions.Value(),
		FromTable: t.fromTable.Value(),
		FromProc:  t.fromProc.Value(),
		Unknown:   t.unknown.Value(),
		ProcErrs:  t.procErrs.Value(),
	}
}
