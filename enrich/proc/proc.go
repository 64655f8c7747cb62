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
// process" are cached in the table as well.
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
// by then, the event takes its parent's (a fork inherits the cgroup).
// Parsed cgroup files are shared by every image with the same content.
package proc

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	if c.Ancestry < 0 || c.Ancestry > maxAncestry {
		return fmt.Errorf("proc: ancestry %d out of range 0..%d", c.Ancestry, maxAncestry)
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

// maxAncestry bounds Config.Ancestry.
const maxAncestry = 16

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
	cg         *audit.Cgroup     // nil when not read; shared by images of one cgroup
	self       [1]*audit.Process // &parent: the ancestry of a parent without known ancestors
	argv       [6]string         // room for a short argv (parent.Args)
}

// An image learnt from an event is a stored with room for the bytes of
// parent's strings and auid right behind it, so that the usual exec costs
// one allocation: smallImage (320 bytes, a size class of Go's allocator)
// when they fit in 96 bytes, else largeImage (416 bytes, the next class
// but two) when they fit in 192, else a smallImage and a buffer of their
// own. BenchmarkReplay's corpus takes 96 to 174 bytes per exec, most of
// them over 128; `bash -c 'ls -l /var/log'` takes under 64.
type (
	smallImage struct {
		s    stored
		text [96]byte
	}
	largeImage struct {
		s    stored
		text [192]byte
	}
)

// newStored wraps img, an image of pid.
func newStored(pid int, img Image) *stored {
	s := &stored{
		parent: audit.Process{PID: pid, Executable: img.Exe, Args: img.Args, UID: img.UID, StartSec: img.StartMilli / 1000},
		auid:   img.AUID, ppid: img.PPID, startMilli: img.StartMilli, source: img.Source,
	}
	s.self[0] = &s.parent
	return s
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
	execs, evictions, fromTable, fromProc, unknown, procErrs, cgroupReads, exited *metrics.Counter
}

func sharedCounters(reg *metrics.Registry) shared {
	if reg == nil {
		reg = metrics.Default
	}
	return shared{
		execs:       reg.Counter("audisp_enrich_proc_execs_total", "", "Exec events recorded in the process table."),
		evictions:   reg.Counter("audisp_enrich_proc_evictions_total", "", "Pids evicted from the process table for room."),
		fromTable:   reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="table"`, "Parent lookups by outcome."),
		fromProc:    reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="proc"`, "Parent lookups by outcome."),
		unknown:     reg.Counter("audisp_enrich_proc_parent_lookups_total", `result="unknown"`, "Parent lookups by outcome."),
		procErrs:    reg.Counter("audisp_enrich_proc_read_errors_total", "", "Reads of /proc that failed for another reason than the process having exited."),
		exited:      reg.Counter("audisp_enrich_proc_exited_total", "", "Pids removed from the process table because their process had exited when the table learnt it (after a grace of 2 s of event time)."),
		cgroupReads: reg.Counter("audisp_enrich_proc_cgroup_reads_total", "", "Files /proc/<pid>/cgroup read (one per image learnt, with [enrich.proc] cgroup on)."),
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

	execs, evictions, fromTable, fromProc, unknown, procErrs, cgroupReads, exited metrics.Counter
	m                                                                             shared

	graves graveyard // images of processes found gone (bury, reap)
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
//   - ev.Cgroup, the process's cgroup facts, else its parent's.
//
// The error, if any, is a /proc read failure or ctx ending while waiting
// for a /proc reader slot; what was found before it is set.
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
	if self := t.learn(sum, ppid, at); self != nil {
		ev.Cgroup = self.cg
	}
	if !validPid(ppid) {
		return nil
	}
	img, err := t.parent(ctx, ppid, at)
	if img == nil {
		return err
	}
	ev.Parent = &img.parent
	if ev.Cgroup == nil {
		ev.Cgroup = img.cg
	}
	if t.ancestry > 0 {
		var aerr error
		ev.Ancestry, aerr = t.ancestors(ctx, img, at)
		err = errors.Join(err, aerr)
	}
	return err
}

// learn stores the image of the event's process and returns it: the new
// image of an exec; for any other event with an executable (a SYSCALL
// record), the table's image of the pid at the event's time when it runs
// that executable, else the running image read from the event (its exe
// and PROCTITLE). It returns nil for events without a process.
func (t *Table) learn(sum *audit.Summary, ppid int, at int64) *stored {
	if sum.Exe == "" {
		return nil
	}
	pid, err := strconv.Atoi(sum.PID)
	if err != nil || !validPid(pid) {
		return nil
	}
	src, argv := SourceExec, sum.Args
	if !sum.Exec {
		if img, st := t.lookup(pid, at); st == found && img.parent.Executable == sum.Exe {
			return img
		}
		src, argv = SourceSyscall, sum.Title
	}
	// One buffer holds exe, uid, auid and argv, so the entry does not pin
	// the event's lines: the image's own room when they fit.
	f := [3]string{sum.Exe, sum.UID, sum.AUID}
	var s *stored
	var text []byte
	if n := ownSize(f[:], argv); n > len(smallImage{}.text) && n <= len(largeImage{}.text) {
		img := new(largeImage)
		s, text = &img.s, img.text[:]
	} else {
		img := new(smallImage)
		s, text = &img.s, img.text[:]
	}
	s.ppid, s.startMilli, s.source = ppid, at, src
	s.self[0] = &s.parent
	room := s.argv[:0]
	if len(argv) > len(s.argv) {
		room = make([]string, 0, min(len(argv), maxArgs))
	}
	args := ownCopy(f[:], argv, room, text)
	if len(args) == 0 {
		args = nil
	}
	s.parent = audit.Process{PID: pid, Executable: f[0], Args: args, UID: f[1], StartSec: at / 1000}
	s.auid = f[2]
	cg, gone := t.cgroup(pid)
	s.cg = cg
	t.store(pid, s)
	if src == SourceExec {
		t.execs.Inc()
		t.m.execs.Inc()
	}
	if gone {
		t.bury(pid, s, at)
	}
	t.reap(at)
	return s
}

// ancestors returns parent and its ancestors at time at, parent first, at
// most t.ancestry, stopping at the first unknown one (or a pid already in
// the chain: pids are reused). A chain of the parent alone is the parent's
// own one-element slice; a longer one is one allocation.
func (t *Table) ancestors(ctx context.Context, parent *stored, at int64) ([]*audit.Process, error) {
	if t.ancestry == 1 || !validPid(parent.ppid) {
		return parent.self[:], nil
	}
	chain := make([]*audit.Process, 1, t.ancestry)
	chain[0] = &parent.parent
	var err error
	for cur := parent; len(chain) < t.ancestry && validPid(cur.ppid); {
		var next *stored
		if next, _, err = t.find(ctx, cur.ppid, at); next == nil {
			break
		}
		if slices.ContainsFunc(chain, func(p *audit.Process) bool { return p.PID == next.parent.PID }) {
			break
		}
		chain = append(chain, &next.parent)
		cur = next
	}
	return chain, err
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

// parent finds the image of ppid at time at (see find) and counts the
// outcome. It returns nil when the parent is unknown.
func (t *Table) parent(ctx context.Context, ppid int, at int64) (*stored, error) {
	img, src, err := t.find(ctx, ppid, at)
	switch {
	case img == nil:
		t.count(&t.unknown, t.m.unknown)
	case src == SourceProc:
		t.count(&t.fromProc, t.m.fromProc)
	default:
		t.count(&t.fromTable, t.m.fromTable)
	}
	return img, err
}

// find returns the image of pid at time at, in the table, else in /proc
// (then cached, with its cgroup facts), and whether it was read from /proc
// now (SourceProc) or found in the table (0). It returns nil when the
// process is unknown.
func (t *Table) find(ctx context.Context, pid int, at int64) (*stored, Source, error) {
	img, st := t.lookup(pid, at)
	switch {
	case st == found:
		return img, 0, nil
	case st != absent || t.fs == nil:
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
			return nil, 0, fmt.Errorf("proc: waiting to read /proc/%d: %w", pid, ctx.Err())
		}
	}
	read, err := t.fs.read(pid)
	<-t.sem
	switch {
	case errors.Is(err, errGone):
		t.storeMiss(pid)
		return nil, 0, nil
	case err != nil:
		t.count(&t.procErrs, t.m.procErrs)
		return nil, 0, fmt.Errorf("proc: %w", err)
	}
	img = newStored(pid, read)
	img.cg, _ = t.cgroup(pid)
	t.storeProc(pid, img)
	if img.startMilli-procSlack > at {
		// The pid now belongs to a process younger than the event.
		return nil, 0, nil
	}
	return img, SourceProc, nil
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

// grave is the image of an exited process and the time of the event that
// taught it.
type grave struct {
	pid int
	img *stored
	at  int64
}

// graveyard is a FIFO of graves, oldest first, in event time order as
// learnt (roughly: the pool may learn slightly out of order).
type graveyard struct {
	mu      sync.Mutex
	ring    []grave // grows to maxGraves
	head, n int
}

// bury notes that the process of img (pid) had exited when img was learnt
// from an event at unix ms at: reap removes it once graveGrace has passed.
// This keeps the table at about the live processes plus graveGrace of
// exits, instead of filling it with short-lived processes that no event
// will name again (their exits are not audited, so nothing else tells).
func (t *Table) bury(pid int, img *stored, at int64) {
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
	g.ring[(g.head+g.n)%len(g.ring)] = grave{pid: pid, img: img, at: at}
	g.n++
	g.mu.Unlock()
	if early.img != nil {
		t.forget(early)
	}
}

// reap removes the images buried at least graveGrace before event time at.
func (t *Table) reap(at int64) {
	g := &t.graves
	for {
		g.mu.Lock()
		if g.n == 0 || g.ring[g.head].at+graveGrace > at {
			g.mu.Unlock()
			return
		}
		d := g.ring[g.head]
		g.ring[g.head] = grave{}
		g.head = (g.head + 1) % len(g.ring)
		g.n--
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
	if e, ok := sh.lru.Get(d.pid); ok && e.n > 0 && e.img[0] == d.img {
		sh.lru.Remove(d.pid)
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

		CgroupReads: t.cgroupReads.Value(),
		Exited:      t.exited.Value(),
	}
}
