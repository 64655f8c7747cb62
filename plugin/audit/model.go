// Package audit is the event model of audisp-enrich: audit records as auditd
// delivers them, whole events rebuilt from them, and the lossless JSON and
// msgpack encodings of those events.
//
// It is a leaf package: it imports nothing else of this module, so that the
// enrichers and the runtime can share one model without cycles.
package audit

import (
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Encoding says how a field value appeared on the wire.
type Encoding uint8

const (
	// Bare is an unquoted value that is not hex (numbers, flags, ids).
	Bare Encoding = iota
	// Quoted is a "double-quoted" value; Value holds the text between the quotes.
	Quoted
	// Hex is an untrusted string that the kernel or libaudit hex-encoded;
	// Value holds the decoded bytes (which may be invalid UTF-8).
	Hex
	// SingleQuoted is the 'nested' msg='...' of user-space records.
	SingleQuoted
)

// Field is one name=value pair of a record, in wire order.
//
// Raw is the value exactly as sent (quotes included), Value is the decoded
// value. Both usually point into the record's Line, so a Field costs no
// allocation of its own.
type Field struct {
	Name  string
	Raw   string
	Value string
	Enc   Encoding
}

// Record is one audit record: one line of auditd's string format.
type Record struct {
	// Node is the node=NAME prefix; empty when the line has none.
	Node string
	// Type is the record type name as sent ("SYSCALL", "UNKNOWN[1337]").
	Type string
	// TypeNum is the numeric type when known (from the name table or the
	// UNKNOWN[n] form, or the binary header); 0 when not known.
	TypeNum uint16
	Sec     int64
	Msec    uint16
	Serial  uint32
	// Fields are the raw-format fields in wire order. For user-space records
	// the fields of the nested msg='...' follow the outer fields, each with
	// Nested set in NestedFrom (index of the first nested field, or -1).
	Fields     []Field
	NestedFrom int
	// Interp are the fields auditd's ENRICHED format appended after the 0x1D
	// separator (upper-case names such as UID, ARCH, SYSCALL, SADDR).
	Interp []Field
	// Line is the whole line as received, without the trailing newline.
	Line string
	// Irregular is set when Line cannot be rebuilt from the parsed parts
	// (unusual spacing, text that is not name=value); encoders then keep Line.
	Irregular bool

	slab *slab // the Parser slab that holds this record; nil once released
	gs   int   // offset in Line of the 0x1D before the ENRICHED fields, or 0
}

// Get returns the decoded value of the first field called name.
func (r *Record) Get(name string) (string, bool) {
	for i := range r.Fields {
		if r.Fields[i].Name == name {
			return r.Fields[i].Value, true
		}
	}
	return "", false
}

// GetInterp returns the ENRICHED value called name (for example "UID").
func (r *Record) GetInterp(name string) (string, bool) {
	for i := range r.Interp {
		if r.Interp[i].Name == name {
			return r.Interp[i].Value, true
		}
	}
	return "", false
}

// EventID identifies an event the way auparse does: node, time and serial.
type EventID struct {
	Node   string
	Sec    int64
	Msec   uint16
	Serial uint32
}

// String renders the id as NODE:SEC.MSEC:SERIAL (NODE empty when unknown).
func (id EventID) String() string {
	b := make([]byte, 0, len(id.Node)+32)
	return string(id.Append(b))
}

// Append appends the String form of id to b.
func (id EventID) Append(b []byte) []byte {
	b = append(b, id.Node...)
	b = append(b, ':')
	b = strconv.AppendInt(b, id.Sec, 10)
	b = append(b, '.')
	if id.Msec < 100 {
		b = append(b, '0')
	}
	if id.Msec < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, uint64(id.Msec), 10)
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(id.Serial), 10)
}

// Time returns the event time in UTC.
func (id EventID) Time() time.Time {
	return time.Unix(id.Sec, int64(id.Msec)*int64(time.Millisecond)).UTC()
}

// Kind tells what a document is about.
type Kind uint8

const (
	// KindAudit is a reassembled audit event.
	KindAudit Kind = iota
	// KindVerdict reports a VirusTotal verdict that arrived after the
	// events carrying the hash were already sent.
	KindVerdict
	// KindAlert reports a loss inside audisp-enrich (a dropped event, a full
	// buffer) so that it reaches the SIEM as well as the log.
	KindAlert
)

func (k Kind) String() string {
	switch k {
	case KindVerdict:
		return "verdict"
	case KindAlert:
		return "alert"
	default:
		return "audit"
	}
}

// Event is one reassembled audit event plus what the enrichers added.
//
// The reassembler creates events; after it hands one over, exactly one
// goroutine at a time owns it (an enricher, then the encoder, then the
// output stage, which releases it: see Release), so Event needs no
// locking.
type Event struct {
	Kind    Kind
	ID      EventID
	Records []*Record
	// TimedOut is set when the event was closed by the end-of-event timeout
	// or by eviction rather than by EOE or a last-record type.
	TimedOut bool
	// Evicted is set when the event was closed early because too many events
	// were in flight.
	Evicted bool
	// Late is set when these records arrived after their event had been
	// emitted: an earlier document has the same ID and the other records.
	Late bool
	// Summary, when not nil, is the event's summary, computed once by the
	// enrichment pool's worker for its enrichers and its encoder (see
	// SummaryOf). It is the worker's scratch: the pool clears it before
	// the event leaves, so it is never set on an event a sink sees.
	Summary *Summary

	Enrichment

	// home is the reassembler's list the event returns to when it is
	// released (see Release); nil for events no reassembler made.
	home *eventList
}

// Enrichment is what enrichers attach to an event. All of it is plain data;
// each enricher writes only its own fields, and adds to the shared ones
// (Tags, Techniques, Severity).
//
// Shared lists: Tags, Techniques, Hunt and Sigma may share their arrays
// with other events (the ATT&CK enricher hands every event of a key the
// same techniques; the hunting and Sigma enrichers hand the events with the
// same hits on the same lists the same slices, see enrich.ListMemo).
// Therefore every writer only appends to them (or replaces them whole) and
// never writes an element in place, and a slice given to more than one
// event has its capacity equal to its length, so that an append copies it.
// Under this contract two lists that are the same slice (SameList) hold
// the same elements, which memos and encoders use to skip work.
type Enrichment struct {
	// Tags are free-form labels (keys, hunting tags, tamper tags). The
	// slice may be shared with other events (see above).
	Tags []string
	// Techniques are ATT&CK techniques found for the event. The slice may
	// be shared with other events (see above).
	Techniques []Technique
	// Hashes are file hashes taken from INTEGRITY_RULE records.
	Hashes []FileHash
	// Blocklist holds blocklist hits, one per matched hash and list.
	Blocklist []ListHit
	// Allowlisted names the allow lists that matched a hash.
	Allowlisted []ListHit
	// Package is what the package database says about the event's first
	// SHA-256 (else SHA-1) hash. It may be shared with other events: never
	// modify it.
	Package *PackageResult
	// VirusTotal is the lookup outcome for the event's primary hash.
	VirusTotal *VTResult
	// Hunt holds the hunting rules that matched. The slice may be shared
	// with other events (see above).
	Hunt []HuntHit
	// Sigma holds the Sigma rules that matched. The slice may be shared
	// with other events (see above).
	Sigma []SigmaHit
	// Parent is the parent process when known. It may be shared with other
	// events (the process table hands every child the same value): never
	// modify it.
	Parent *Process
	// Ancestry is the chain of ancestors when known, parent first (so
	// Ancestry[0] == Parent), at most [enrich.proc] ancestry (at most
	// MaxAncestry) long. It
	// stops at the first ancestor the process table does not know. The
	// slice and its elements may be shared with other events (the process
	// table hands children of one parent the same chain, clipped so that
	// an append copies): never modify them.
	Ancestry []*Process
	// Cgroup is what the process's /proc/<pid>/cgroup says: its container
	// and systemd unit. It may be shared with other events: never modify
	// it.
	Cgroup *Cgroup
	// Severity is the highest severity any enricher assigned (0 none,
	// 1 low, 2 medium, 3 high, 4 critical).
	Severity int
	// Related lists event ids a verdict or alert document refers to.
	Related []string
	// Alert describes a loss for KindAlert documents.
	Alert *Alert
	// Warnings are non-fatal problems met while building or enriching the
	// event; an enricher error lands here, never as a lost event.
	Warnings []string
}

// SameList reports whether a and b are the same slice: the same length
// and, unless empty, the same first element. Under Enrichment's sharing
// contract the same slice holds the same elements.
func SameList[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.SliceData(a) == unsafe.SliceData(b))
}

// AddTag adds t unless it is already present (appending: the list may be
// shared, see Enrichment).
func (e *Enrichment) AddTag(t string) {
	for _, x := range e.Tags {
		if x == t {
			return
		}
	}
	if e.Tags == nil {
		e.Tags = make([]string, 0, 4) // one allocation for the usual few tags
	}
	e.Tags = append(e.Tags, t)
}

// Technique is one ATT&CK technique or sub-technique. An entry with an
// empty ID carries tactics only (a Sigma rule's tactic tag that none of
// its techniques names): the encoders write its tactics and no technique.
// An ID the bundled catalog lacks comes with no Name, Reference or Tactics.
type Technique struct {
	ID        string   // T1059.004; "" for tactics only
	Name      string   // Unix Shell
	Reference string   // https://attack.mitre.org/techniques/T1059/004/
	ParentID  string   // T1059 for a sub-technique, "" otherwise
	Parent    string   // Command and Scripting Interpreter
	Tactics   []Tactic // from the catalog
	Source    string   // what produced it: "key:<key>", "hunt:<rule>", "sigma:<id>"
}

// Tactic is an ATT&CK tactic.
type Tactic struct {
	ID        string // TA0002
	Name      string // Execution
	Reference string
}

// FileHash is a file digest taken from an integrity record.
type FileHash struct {
	Path   string // decoded file= value
	Algo   string // sha256, sha1, sha512, md5
	Hex    string // lower-case hex digest
	Record int    // index of the record in Event.Records
}

// ListHit is a match of a hash in a local block or allow list.
type ListHit struct {
	List  string
	Label string
	Hash  string
}

// VTResult is the VirusTotal outcome attached to an event or a verdict.
type VTResult struct {
	Status string // hit | pending | not_found | error | skipped
	Reason string // for skipped or error
	Hash   string
	*VTVerdict
}

// VTVerdict is what VirusTotal says about a file.
type VTVerdict struct {
	Malicious       int64
	Suspicious      int64
	Harmless        int64
	Undetected      int64
	Reputation      int64
	ThreatLabel     string
	MeaningfulName  string
	FirstSubmission int64 // unix seconds
	LastAnalysis    int64 // unix seconds
	Link            string
}

// PackageResult is the package database's answer for a file hash.
type PackageResult struct {
	Status       string // package | modified | relocated | unowned | unindexed
	Manager      string // dpkg | rpm
	Name         string // the owning package ("" for unowned, unindexed without owner)
	Version      string
	OriginalPath string // relocated: the package's path with this content
}

// HuntHit is a hunting rule that matched.
type HuntHit struct {
	Rule     string
	Severity int
	Tags     []string
}

// MaxAncestry is the most ancestors an event lists (Event.Ancestry):
// the bound of [enrich.proc] ancestry, and of what rules may ask of it.
const MaxAncestry = 16

// Process is process context from the process table.
type Process struct {
	PID int
	// Executable is the path of the program, "" when unknown: a process
	// read from /proc whose exe link could not be read (another user's
	// process once the plugin runs as its service user; a kernel thread).
	Executable string
	// Comm is the kernel's name of the process (/proc/<pid>/stat comm, at
	// most 15 bytes, which the process may change itself), set only when
	// Executable is unknown; it is no path.
	Comm     string
	Args     []string
	UID      string
	StartSec int64
}

// Name returns the process's name: the last element of its executable
// when known, else its comm ("" when neither is).
func (p *Process) Name() string {
	if p.Executable == "" {
		return p.Comm
	}
	return p.Executable[strings.LastIndexByte(p.Executable, '/')+1:]
}

// Cgroup is what a process's cgroup membership says about it (see
// enrich/proc.ParseCgroupFile). Fields are "" when unknown.
type Cgroup struct {
	Path        string // the cgroup path the facts below came from (v2, else name=systemd)
	ContainerID string // 64 hex digits
	Runtime     string // docker | containerd | cri-o | podman, "" when the path does not say
	PodUID      string // the Kubernetes pod's uid
	Unit        string // the systemd unit: the deepest *.service of the path
	UserOf      string // the uid whose user manager (user@UID.service) runs Unit, "" for system units
}

// Alert describes a loss inside audisp-enrich.
type Alert struct {
	Sink   string
	Reason string
	Count  uint64
}

// SigmaHit is a Sigma rule that matched. Tags may be shared with other
// hits of the same rule: never modify them.
type SigmaHit struct {
	ID     string
	Title  string
	Level  string
	Author string
	Tags   []string
}

// SigmaSeverity is the event severity of a Sigma rule's level (lower
// case): informational 0, low 1, medium 2, high 3, critical 4. ok is
// false for any other text (no level: "").
func SigmaSeverity(level string) (severity int, ok bool) {
	switch level {
	case "informational":
		return 0, true
	case "low":
		return 1, true
	case "medium":
		return 2, true
	case "high":
		return 3, true
	case "critical":
		return 4, true
	}
	return 0, false
}
