// Package proc keeps a bounded process table fed by exec events and sets the
// process context of every event from it: the parent, the chain of
// ancestors, and the container and systemd unit of the process.
//
// The table maps a pid to the program images it ran, learnt from successful
// execve/execveat events (SYSCALL + EXECVE records) and, for processes whose
// exec the table did not see (started before the plugin, or not audited),
// from any other event of theirs that has a SYSCALL record (its exe and
// PROCTITLE). A pid keeps its number
// across exec, so each exec replaces the image of its pid; the image before
// it is kept too, so that an event stamped before the exec, but enriched
// after it (the pool runs events in parallel), still finds the parent as it
// was at the event's time. Processes started before the plugin are read from
// /proc/<pid> on a table miss (when enabled); that result and "no such
// process" are cached in the table as well. The kernel lets a reader
// without ptrace access to a process (the plugin, once it runs as its
// service user, to every other user's process) read its stat, cmdline and
// status but not its exe link: such an image has the process's comm
// instead of an executable (Image.Comm, audit.Process.Comm), until an
// event of the process names its executable.
//
// The parent is best-effort: the table cannot see exits, and a child's event
// enriched before its parent's exec event falls back to /proc. A process
// whose cgroup file is already gone when the table learns its image (most
// short-lived commands, in plugin mode with cgroup on) is removed again
// after a grace of 2 s of event time, so the table holds about the live
// processes and the last two seconds of exits instead of filling up with
// dead ones; other pids leave by LRU eviction only.
//
// Container and unit come from /proc/<pid>/cgroup, read once per image the
// table learns (with proc_fallback and cgroup on); when the process is gone
// by then, the event takes its parent's (a fork inherits the cgroup),
// unless the parent is a container runtime, shim or monitor (isRuntime),
// which runs outside the container it starts the command in: then the
// event has none.
// Parsed cgroup files are shared by every image with the same content.
//
// Memory: the images live in a pointer-free arena per shard (see arena),
// which the garbage collector does not scan and which gives the blocks of
// evicted images to the next ones, so a table that has reached its size
// allocates nothing per event. What events get (Parent, Ancestry) are
// views: copies made once per image that is some event's parent or
// ancestor, shared by those events, which stay valid and unchanged after
// the table has evicted the image and reused its blocks.
package proc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	// host, where /proc describes unrelated processes. A process whose
	// executable cannot be read there is known by its comm (see
	// procFS.read).
	ProcFallback bool `toml:"proc_fallback"`
	// Ancestry is how many ancestors an event lists, parent first
	// (default 4, 0..16; 0 lists none, 1 only the parent). Each is a
	// table lookup (with the /proc fallback) per event.
	Ancestry int `toml:"ancestry"`
	// Cgroup reads /proc/<pid>/cgroup for each image the table learns, for
	// the container and systemd unit (default true). It needs
	// ProcFallback: both describe this host now.
	Cgroup bool `toml:"cgroup"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Enabled: true, MaxEntries: 16384, ProcFallback: true, Ancestry: 4, Cgroup: true}
}

// Validate reports the first invalid option.
func (c *Config) Validate() error {
	if c.MaxEntries < 1 || c.MaxEntries > 1<<24 {
		return fmt.Errorf("proc: max_entries %d out of range 1..16777216", c.MaxEntries)
	}
	if c.Ancestry < 0 || c.Ancestry > audit.MaxAncestry {
		return fmt.Errorf("proc: ancestry %d out of range 0..%d", c.Ancestry, audit.MaxAncestry)
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
	// SourceSyscall is an image seen in another event than an exec: its
	// StartMilli is that event's time and its Args the PROCTITLE argv,
	// which the kernel cuts at 128 bytes.
	SourceSyscall
)

// Image is a program a pid ran, as Record takes it and Lookup returns it.
// The table keeps copies of its strings, bounded (see maxArgs).
type Image struct {
	Exe string
	// Comm is the kernel's name of the process, kept only when Exe is
	// unknown: an image read from /proc whose exe link could not be read
	// (see procFS.read).
	Comm string
	Args []string // at most 64 arguments and 4 KiB
	UID  string   // numeric, as logged
	AUID string   // numeric, as logged
	PPID int
	// StartMilli is when the image started: the exec event's time, in unix
	// milliseconds.
	StartMilli int64
	Source     Source
}

// entry is what the table holds for one pid: up to two images (the first
// blocks of their chains in the shard's arena), newest first, or a cached
// miss. It holds no pointers, in 16 bytes.
type entry struct {
	img     [2]uint32
	n       uint8  // images held (0 for a cached miss)
	expires uint32 // unix seconds after which a cached miss is forgotten
}

// view is an image as events see it: its Process is the Parent (or an
// Ancestry element) that the table hands out, made the first time the
// image is looked up as someone's parent or ancestor and then shared by
// every such event. Its strings are its own copies, never the arena's, so
// a view stays valid, unchanged, for as long as anything holds it, after
// the image is evicted and its blocks reused (the garbage collector frees
// it). Immutable once made, except for the cached chain.
type view struct {
	p     audit.Process
	self  [1]*audit.Process // &p: the ancestry of a parent without known ancestors
	ppid  int
	cg    *audit.Cgroup
	argv  [6]string                        // room for a short argv (p.Args)
	chain atomic.Pointer[[]*audit.Process] // the last ancestry built from it (see chainOf)
	// released is set when the image is freed (shard.release), which
	// also drops the cached chain: a view no longer in the table must not
	// keep its ancestors' views alive, or each freed view would hold the
	// next through its chain and memory would grow with every exec.
	released atomic.Bool
}

// chainOf returns c, an ancestry that starts with v, as a slice that
// events may share: the one cached in v when it holds the same processes,
// else a clipped copy, which it caches while v is in the table. It may
// run without the shard's lock, concurrently with release: whichever of
// the two stores last, a released view ends with no cached chain.
func (v *view) chainOf(c []*audit.Process) []*audit.Process {
	if len(c) == 1 {
		return v.self[:]
	}
	if old := v.chain.Load(); old != nil && slices.Equal(*old, c) {
		return *old
	}
	own := slices.Clip(slices.Clone(c))
	v.chain.Store(&own)
	if v.released.Load() {
		v.chain.Store(nil)
	}
	return own
}

// release marks v freed and drops its cached chain (see released).
func (v *view) release() {
	v.released.Store(true)
	v.chain.Store(nil)
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
	// ExeUnreadable counts the processes read from /proc whose exe link
	// was refused (another user's, once the plugin has dropped its
	// privileges): their images have a Comm instead of an Exe.
	ExeUnreadable uint64
	// CgroupReads counts the /proc/<pid>/cgroup files read: one per image
	// learnt (exec or first sighting) or read from /proc, none for an
	// event whose image the table holds.
	CgroupReads uint64
	// Exited counts the pids removed because their process had exited by
	// the time the table learnt its image (its cgroup file was gone),
	// graveGrace after that event.
	Exited uint64
}

// shared are the registry's counters of the "proc" enricher; every Table
// built with the same registry adds to them (a reload continues them).
type shared struct {
	execs, evictions, fromTable, fromProc, unknown, procErrs, exeUnreadable, cgroupReads, exited *metrics.Counter
}

func sharedCounters(reg *metrics.Registry) shared {
	if reg == nil {
		reg = metrics.Default
	}
	return shared{
		execs:         reg.Counter("audisp_enrich_proc_execs_total", "", "Exec events recorded in the process table."),
		evictions:     reg.Counter("audisp_enrich_proc_evictions_total", "", "Pids evicted from the process table for room."),
		fromTable:     reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="table"`, "Parent lookups by outcome."),
		fromProc:      reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="proc"`, "Parent lookups by outcome."),
		unknown:       reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="unknown"`, "Parent lookups by outcome."),
		procErrs:      reg.Counter("audisp_enrich_proc_read_errors_total", "", "Reads of /proc that failed for another reason than the process having exited."),
		exeUnreadable: reg.Counter("audisp_enrich_proc_exe_unreadable_total", "", "Processes read from /proc whose executable (the exe link) could not be read, mostly other users' processes once the plugin runs as its service user; the process table keeps their name (comm) instead."),
		exited:        reg.Counter("audisp_enrich_proc_exited_total", "", "Pids removed from the process table because their process had exited when the table learnt it (after a grace of 2 s of event time)."),
		cgroupReads:   reg.Counter("audisp_enrich_proc_cgroup_reads_total", "", "Files /proc/<pid>/cgroup read (one per image learnt, with [enrich.proc] cgroup on)."),
	}
}

// Table is the process table and the "proc" enricher. It is safe for
// concurrent use.
type Table struct {
	fs       *procFS      // nil without ProcFallback
	cgroups  *cgroupCache // nil unless ProcFallback and Cgroup
	ancestry int          // Config.Ancestry
	sem      chan struct{}
	now      func() time.Time

	// shards split the pids (by pid modulo their number), each with its
	// own lock and LRU, so that workers seldom wait on, or move the cache
	// line of, one another's lock. A small table has one shard.
	shards []shard

	execs, evictions, fromTable, fromProc, unknown, procErrs, exeUnreadable, cgroupReads, exited metrics.Counter
	m                                                                                            shared

	graves graveyard // images of processes found gone (bury, reap)
}

// shard is one lock of a Table and what it guards: the LRU of the shard's
// pids, the arena of their images and the views made of them. The padding
// keeps one shard's lock off the cache line of the previous shard's fields.
type shard struct {
	mu    sync.Mutex
	lru   *pidLRU
	arena arena
	views map[uint32]*view // by first block; made when first needed
	_     [64]byte
}

// maxShards is the number of shards of a table of at least
// minShardEntries*maxShards entries; smaller tables have one.
const (
	maxShards       = 8
	minShardEntries = 1024
)

// shardOf returns the shard of pid (pid modulo the number of shards, a
// power of two, so a mask rather than a division).
func (t *Table) shardOf(pid int) *shard {
	return &t.shards[uint(pid)&uint(len(t.shards)-1)]
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
	t := &Table{now: time.Now, sem: make(chan struct{}, maxProcReaders), m: sharedCounters(reg), ancestry: cfg.Ancestry}
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
		if cfg.Cgroup {
			t.cgroups = newCgroupCache()
		}
	}
	return t, nil
}

// Name returns "proc".
func (t *Table) Name() string { return "proc" }

// Enrich records ev's process image (the new one of an exec; for another
// event with a SYSCALL record, the running one when the table does not hold
// it yet), then sets, as they were at the event's time:
//   - ev.Parent, from the parent pid of ev's SYSCALL (or INTEGRITY_RULE)
//     record; nil when the parent is unknown;
//   - ev.Ancestry, the parent and its known ancestors, at most ancestry;
//   - ev.Cgroup, the process's cgroup facts, else its parent's, unless
//     the parent is a container runtime (isRuntime): a command it started
//     in a container (docker exec, kubectl exec) is not in its cgroup.
//
// What it sets is shared with other events and never changes: the table
// hands out copies of its images (see view), which stay valid after the
// images are evicted. The error, if any, is a /proc read failure or ctx
// ending while waiting for a /proc reader slot; what was found before it
// is set.
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
	ev.Cgroup = t.learn(sum, ppid, at)
	if !validPid(ppid) {
		return nil
	}
	v, err := t.parent(ctx, ppid, at)
	if v == nil {
		return err
	}
	ev.Parent = &v.p
	if ev.Cgroup == nil && !isRuntime(v.p.Name()) {
		ev.Cgroup = v.cg
	}
	if t.ancestry > 0 {
		var aerr error
		ev.Ancestry, aerr = t.ancestors(ctx, v, at)
		err = errors.Join(err, aerr)
	}
	return err
}

// learn stores the image of the event's process and returns its cgroup
// facts: the new image of an exec; for any other event with an executable
// (a SYSCALL record), the table's image of the pid at the event's time
// when it runs that executable, else the running image read from the event
// (its exe and PROCTITLE). It returns nil for events without a process.
func (t *Table) learn(sum *audit.Summary, ppid int, at int64) *audit.Cgroup {
	if sum.Exe == "" {
		return nil
	}
	pid, err := strconv.Atoi(sum.PID)
	if err != nil || !validPid(pid) {
		return nil
	}
	sh := t.shardOf(pid)
	im := image{Image: Image{Exe: sum.Exe, UID: sum.UID, AUID: sum.AUID, Args: sum.Args, PPID: ppid, StartMilli: at, Source: SourceExec}}
	if !sum.Exec {
		sh.mu.Lock()
		if b, st := t.imageAt(sh, pid, at); st == found && sh.arena.exeIs(b, sum.Exe) {
			cg := sh.arena.cg(b)
			sh.mu.Unlock()
			return cg
		}
		sh.mu.Unlock()
		im.Args, im.Source = sum.Title, SourceSyscall
	}
	var gone bool
	im.cg, gone = t.cgroup(pid)
	sh.mu.Lock()
	b := sh.arena.put(&im)
	serial := sh.arena.serial // the image just stored
	t.store(sh, pid, b)
	sh.mu.Unlock()
	if im.Source == SourceExec {
		t.execs.Inc()
		t.m.execs.Inc()
	}
	if gone {
		t.bury(pid, b, serial, at)
	}
	t.reap(at)
	return im.cg
}

// ancestors returns parent and its ancestors at time at, parent first, at
// most t.ancestry, stopping at the first unknown one (or a pid already in
// the chain: pids are reused). The slice is shared by the events with the
// same chain (see view.chainOf): it costs no allocation while the chain
// stays the same.
func (t *Table) ancestors(ctx context.Context, parent *view, at int64) ([]*audit.Process, error) {
	if t.ancestry == 1 || !validPid(parent.ppid) {
		return parent.self[:], nil
	}
	var buf [audit.MaxAncestry]*audit.Process
	chain := append(buf[:0], &parent.p)
	var err error
	for cur := parent; len(chain) < t.ancestry && validPid(cur.ppid); {
		var next *view
		if next, _, err = t.find(ctx, cur.ppid, at); next == nil {
			break
		}
		if slices.ContainsFunc(chain, func(p *audit.Process) bool { return p.PID == next.p.PID }) {
			break
		}
		chain = append(chain, &next.p)
		cur = next
	}
	return parent.chainOf(chain), err
}

// Record stores a copy of img as an image of pid. The table keeps the two
// latest images of each pid by StartMilli, whatever order they are
// recorded in.
func (t *Table) Record(pid int, img Image) {
	if !validPid(pid) {
		return
	}
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t.store(sh, pid, sh.arena.put(&image{Image: img}))
}

// store makes the image at block b (in sh's arena) an image of pid,
// freeing what the table no longer holds: the image it displaces (or b
// itself, when older than both held), and the entry of an evicted pid.
// Call with sh.mu held.
func (t *Table) store(sh *shard, pid int, b uint32) {
	var drop uint32
	gone, evicted := sh.lru.Update(pid, func(old entry, ok bool) (entry, bool) {
		var e entry
		e, drop = withImage(&sh.arena, old, ok, b)
		return e, true
	})
	sh.release(drop)
	if evicted {
		sh.drop(gone)
		t.evictions.Inc()
		t.m.evictions.Inc()
	}
}

// withImage returns the entry of a pid once the image at b is recorded
// (the two latest images by start time) and the image it no longer holds,
// if any.
func withImage(a *arena, old entry, ok bool, b uint32) (entry, uint32) {
	e := entry{img: [2]uint32{b}, n: 1}
	if !ok || old.n == 0 {
		return e, 0
	}
	var drop uint32
	if old.n == 2 {
		drop = old.img[1]
	}
	e.n = 2
	switch start := a.start(b); {
	case start >= a.start(old.img[0]):
		e.img[1] = old.img[0]
	case old.n == 1 || start >= a.start(old.img[1]):
		e.img = [2]uint32{old.img[0], b}
	default: // older than both: keep the two we have
		e.img, drop = old.img, b
	}
	return e, drop
}

// release frees the image at b (none when 0) and its view. Call with
// sh.mu held.
func (sh *shard) release(b uint32) {
	if b == 0 {
		return
	}
	if v := sh.views[b]; v != nil {
		v.release()
		delete(sh.views, b)
	}
	sh.arena.release(b)
}

// drop frees the images of e, an entry no longer held.
func (sh *shard) drop(e entry) {
	for _, b := range e.img[:e.n] {
		sh.release(b)
	}
}

// view returns the view of the image of pid at b, made now if needed.
// Call with sh.mu held.
func (sh *shard) view(pid int, b uint32) *view {
	if v := sh.views[b]; v != nil {
		return v
	}
	v := &view{ppid: sh.arena.ppid(b), cg: sh.arena.cg(b)}
	exe, uid, _, args := sh.arena.payload(b).strings(v.argv[:])
	v.p = audit.Process{PID: pid, Executable: exe, Args: args, UID: uid, StartSec: sh.arena.start(b) / 1000}
	if sh.arena.named(b) {
		v.p.Executable, v.p.Comm = "", exe
	}
	v.self[0] = &v.p
	if sh.views == nil {
		sh.views = make(map[uint32]*view)
	}
	sh.views[b] = v
	return v
}

// Lookup returns the image pid was running at unix millisecond at (the
// latest one when at is 0), from the table only.
func (t *Table) Lookup(pid int, at int64) (Image, bool) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, st := t.imageAt(sh, pid, at)
	if st != found {
		return Image{}, false
	}
	a := &sh.arena
	img := Image{PPID: a.ppid(b), StartMilli: a.start(b), Source: a.source(b)}
	img.Exe, img.UID, img.AUID, img.Args = a.payload(b).strings(nil)
	if a.named(b) {
		img.Exe, img.Comm = "", img.Exe
	}
	return img, true
}

type lookupState uint8

const (
	absent    lookupState = iota // not in the table
	found                        // image valid at the time
	knownMiss                    // cached: not in /proc either
	tooNew                       // every image held started after the time
)

// imageAt returns the first block of the image pid ran at time at. Call
// with sh.mu held (sh is pid's shard); the block is valid while it is.
func (t *Table) imageAt(sh *shard, pid int, at int64) (uint32, lookupState) {
	e, ok := sh.lru.Get(pid)
	if !ok {
		return 0, absent
	}
	if e.n == 0 {
		if t.now().Unix() < int64(e.expires) {
			return 0, knownMiss
		}
		sh.lru.Remove(pid)
		return 0, absent
	}
	for _, b := range e.img[:e.n] {
		slack := int64(0)
		if sh.arena.source(b) == SourceProc {
			slack = procSlack
		}
		if at == 0 || sh.arena.start(b)-slack <= at {
			return b, found
		}
	}
	return 0, tooNew
}

// parent finds the image of ppid at time at (see find) and counts the
// outcome. It returns nil when the parent is unknown.
func (t *Table) parent(ctx context.Context, ppid int, at int64) (*view, error) {
	v, src, err := t.find(ctx, ppid, at)
	switch {
	case v == nil:
		t.count(&t.unknown, t.m.unknown)
	case src == SourceProc:
		t.count(&t.fromProc, t.m.fromProc)
	default:
		t.count(&t.fromTable, t.m.fromTable)
	}
	return v, err
}

// find returns the view of the image of pid at time at, in the table, else
// in /proc (then cached, with its cgroup facts), and whether it was read
// from /proc now (SourceProc) or found in the table (0). It returns nil
// when the process is unknown.
func (t *Table) find(ctx context.Context, pid int, at int64) (*view, Source, error) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	b, st := t.imageAt(sh, pid, at)
	if st == found {
		v := sh.view(pid, b)
		sh.mu.Unlock()
		return v, 0, nil
	}
	sh.mu.Unlock()
	if st != absent || t.fs == nil {
		return nil, 0, nil
	}
	// A free slot is taken without ctx.Done, which would make the
	// chain's deadline channel and timer for every read.
	select {
	case t.sem <- struct{}{}:
	default:
		select {
		case t.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("waiting to read /proc/%d: %w", pid, ctx.Err())
		}
	}
	read, unreadable, err := t.fs.read(pid)
	<-t.sem
	switch {
	case errors.Is(err, errGone):
		t.storeMiss(pid)
		return nil, 0, nil
	case err != nil:
		t.count(&t.procErrs, t.m.procErrs)
		return nil, 0, err
	case unreadable:
		t.count(&t.exeUnreadable, t.m.exeUnreadable)
	}
	im := image{Image: read} // its Source is SourceProc
	im.cg, _ = t.cgroup(pid)
	v := t.storeProc(pid, &im)
	if im.StartMilli-procSlack > at {
		// The pid now belongs to a process younger than the event.
		return nil, 0, nil
	}
	return v, SourceProc, nil
}

// storeProc caches an image read from /proc unless an image of the pid was
// recorded meanwhile (exec images are more precise), and returns its view.
func (t *Table) storeProc(pid int, im *image) *view {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.arena.put(im)
	v := sh.view(pid, b)
	var kept bool
	gone, evicted := sh.lru.Update(pid, func(old entry, ok bool) (entry, bool) {
		kept = !ok || old.n == 0
		return entry{img: [2]uint32{b}, n: 1}, kept
	})
	if !kept {
		sh.release(b) // the view stays valid: it is a copy
	}
	if evicted {
		sh.drop(gone)
		t.evictions.Inc()
		t.m.evictions.Inc()
	}
	return v
}

// storeMiss caches that pid is not in /proc, unless it was recorded meanwhile.
func (t *Table) storeMiss(pid int) {
	sh := t.shardOf(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	expires := uint32(t.now().Add(missTTL).Unix())
	gone, evicted := sh.lru.Update(pid, func(old entry, ok bool) (entry, bool) {
		return entry{expires: expires}, !ok || old.n == 0
	})
	if evicted {
		sh.drop(gone)
		t.evictions.Inc()
		t.m.evictions.Inc()
	}
}

// cgroup returns the parsed cgroup file of pid (nil with cgroup off, or
// when it cannot be read) and whether the process is gone, and counts the
// read.
func (t *Table) cgroup(pid int) (cg *audit.Cgroup, gone bool) {
	if t.cgroups == nil {
		return nil, false
	}
	t.count(&t.cgroupReads, t.m.cgroupReads)
	return t.cgroups.read(t.fs.root, pid)
}

// graveGrace is how long, in event time, the table keeps the image of a
// process that had already exited when the table learnt it: the events
// that name it as their parent were logged while it lived, so they reach
// the table within this grace unless the stream is far behind (then the
// event times lag with it). Later events of its children name the process
// that adopted them (the kernel reparents orphans).
const graveGrace = 2000 // ms

// maxGraves bounds the images awaiting removal: at more than maxGraves
// per graveGrace exits, the oldest is removed early.
const maxGraves = 8192

// grave is the image of an exited process (its first block and serial,
// which tells it from a later image in the same block) and the time of
// the event that taught it.
type grave struct {
	pid    int
	block  uint32
	serial uint32
	at     int64
}

// graveyard is a FIFO of graves, oldest first, in event time order as
// learnt (roughly: the pool may learn slightly out of order).
type graveyard struct {
	mu      sync.Mutex
	ring    []grave // grows to maxGraves
	head, n int
	// due is the event time from which reap has work (the oldest grave's
	// time plus graveGrace; MaxInt64 when there is none; 0 until the
	// first reap, which then looks), so that reap takes the lock only
	// then. Set under mu (setDue).
	due atomic.Int64
}

// setDue sets g.due from the oldest grave. Call with g.mu held.
func (g *graveyard) setDue() {
	if g.n == 0 {
		g.due.Store(math.MaxInt64)
		return
	}
	g.due.Store(g.ring[g.head].at + graveGrace)
}

// bury notes that the process of the image at block b (serial, of pid)
// had exited when it was learnt from an event at unix ms at: reap removes
// it once graveGrace has passed. This keeps the table at about the live
// processes plus graveGrace of exits, instead of filling it with
// short-lived processes that no event will name again (their exits are
// not audited, so nothing else tells).
func (t *Table) bury(pid int, b, serial uint32, at int64) {
	g := &t.graves
	g.mu.Lock()
	var early grave
	if g.n == maxGraves {
		early = g.ring[g.head]
		g.ring[g.head] = grave{}
		g.head = (g.head + 1) % len(g.ring)
		g.n--
	}
	if g.n == len(g.ring) {
		// Grow (only while not yet maxGraves): unroll the ring into a
		// bigger slice.
		ring := make([]grave, min(max(2*len(g.ring), 64), maxGraves))
		for i := range g.n {
			ring[i] = g.ring[(g.head+i)%len(g.ring)]
		}
		g.ring, g.head = ring, 0
	}
	g.ring[(g.head+g.n)%len(g.ring)] = grave{pid: pid, block: b, serial: serial, at: at}
	g.n++
	g.setDue()
	g.mu.Unlock()
	if early.block != 0 {
		t.forget(early)
	}
}

// reap removes the images buried at least graveGrace before event time at.
func (t *Table) reap(at int64) {
	g := &t.graves
	for at >= g.due.Load() {
		g.mu.Lock()
		if g.n == 0 || g.ring[g.head].at+graveGrace > at {
			g.setDue()
			g.mu.Unlock()
			return
		}
		d := g.ring[g.head]
		g.ring[g.head] = grave{}
		g.head = (g.head + 1) % len(g.ring)
		g.n--
		g.setDue()
		g.mu.Unlock()
		t.forget(d)
	}
}

// forget removes the pid of a grave unless the table learnt a newer image
// of it meanwhile (the pid was reused).
func (t *Table) forget(d grave) {
	sh := t.shardOf(d.pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.lru.Get(d.pid); ok && e.n > 0 && e.img[0] == d.block && sh.arena.serialOf(d.block) == d.serial {
		sh.lru.Remove(d.pid)
		sh.drop(e)
		t.count(&t.exited, t.m.exited)
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

		ExeUnreadable: t.exeUnreadable.Value(),

		CgroupReads: t.cgroupReads.Value(),
		Exited:      t.exited.Value(),
	}
}
