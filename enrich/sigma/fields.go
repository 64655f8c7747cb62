package sigma

import (
	"path"
	"strconv"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// fieldID names a field of the mapped categories (process_creation,
// file_event, network_connection). docs/sigma.md lists where each comes
// from.
type fieldID uint8

const (
	fImage fieldID = iota
	fCommandLine
	fParentImage
	fParentCommandLine
	fUser
	fCurrentDirectory
	fProcessID
	fParentProcessID
	fLogonID
	fTargetFilename
	fDestinationIP
	fDestinationPort
	fInitiated
	numFields
)

var fieldNames = [numFields]string{"Image", "CommandLine", "ParentImage", "ParentCommandLine", "User",
	"CurrentDirectory", "ProcessId", "ParentProcessId", "LogonId", "TargetFilename", "DestinationIp",
	"DestinationPort", "Initiated"}

// process fields every mapped category has.
var processFields = []fieldID{fImage, fCommandLine, fParentImage, fParentCommandLine, fUser,
	fCurrentDirectory, fProcessID, fParentProcessID, fLogonID}

// categoryFields lists the fields each mapped category may name.
var categoryFields = [numKinds][]fieldID{
	kindProcess: processFields,
	kindFile:    append([]fieldID{fTargetFilename}, processFields...),
	kindNetwork: append([]fieldID{fDestinationIP, fDestinationPort, fInitiated}, processFields...),
}

// lookupField returns the id of a field a rule of kind k names.
func lookupField(k kind, name string) (fieldID, bool) {
	for _, f := range categoryFields[k] {
		if fieldNames[f] == name {
			return f, true
		}
	}
	return 0, false
}

// doc is the document a process_creation, file_event or
// network_connection rule is evaluated on. Field texts are taken as
// they are; the command lines are joined and the lower-case forms
// computed only when a rule reads them.
type doc struct {
	vals    [numFields]string
	low     [numFields]string
	has     uint32      // fields the event has
	lowered uint32      // fields whose low is computed
	cmd     [2][]string // CommandLine and ParentCommandLine as arguments, joined on first use
	joined  uint8       // bit i: cmd[i] is joined into vals
	sc      *scratch
}

// reset empties d for a new document whose memory is sc.
func (d *doc) reset(sc *scratch) { *d = doc{sc: sc} }

// set sets field f to v; an empty v leaves the field absent.
func (d *doc) set(f fieldID, v string) {
	if v != "" {
		d.vals[f] = v
		d.has |= 1 << f
	}
}

// cmdFields are the fields whose text is d.cmd[i] joined by spaces.
var cmdFields = [2]fieldID{fCommandLine, fParentCommandLine}

// setArgs sets the command line field cmdFields[i] to args joined by
// spaces, absent when that is empty.
func (d *doc) setArgs(i int, args []string) {
	if len(args) > 1 || len(args) == 1 && args[0] != "" {
		d.cmd[i] = args
		d.has |= 1 << cmdFields[i]
	}
}

// get returns the text of field f, its lower-case form when needLow (else
// possibly ""), and whether the event has it.
func (d *doc) get(f fieldID, needLow bool) (string, string, bool) {
	bit := uint32(1) << f
	if d.has&bit == 0 {
		return "", "", false
	}
	for i, cf := range cmdFields {
		if f == cf && d.joined&(1<<i) == 0 {
			d.joined |= 1 << i
			d.vals[f] = d.sc.join(d.cmd[i])
		}
	}
	if needLow && d.lowered&bit == 0 {
		d.lowered |= bit
		d.low[f] = d.sc.lower(d.vals[f])
	}
	return d.vals[f], d.low[f], true
}

// walk implements walker for the mapped categories: the anchor is the
// Image, the literals are scanned in every field a chosen fact set names
// (scope.docScan), or that a candidate rule's set names (docGate).
func (d *doc) walk(x *index, a *auditCtx, found []uint64) {
	if x.byAnchor[anchorImage] != nil {
		if v, _, ok := d.get(fImage, false); ok {
			a.anchor(x, anchorImage, v)
		}
	}
	if found == nil {
		return
	}
	for f := range numFields {
		switch {
		case d.has&(1<<f) == 0:
			// absent
		case x.scope.docScan&(1<<f) == 0 && !gated(x.scope.docGate[f], a.bits):
			// no fact set of a candidate rule is looked for in it
		case f == fImage && a.exeShared, f == fCommandLine && a.cmdShared:
			// scanned with the records (auditCtx.walk)
		case f == fCommandLine && d.joined&1 == 0:
			d.sc.scanLine(x.lits, d.cmd[0], found)
		case f == fParentCommandLine && d.joined&2 == 0:
			// the same for every child of a process: remembered
			d.sc.memo.scan(x.lits, found, d.sc, d.cmd[1]...)
		default:
			d.sc.scanValue(x.lits, found, d.vals[f])
		}
	}
}

// setProcess fills the process fields from the event summary and parent.
func (d *doc) setProcess(s *audit.Summary, parent *audit.Process) {
	d.set(fImage, s.Exe)
	if len(s.Args) > 0 {
		d.setArgs(0, s.Args)
	} else {
		d.setArgs(0, s.Title)
	}
	if parent != nil {
		d.set(fParentImage, parent.Executable)
		d.setArgs(1, parent.Args)
	}
	if s.UName != "" {
		d.set(fUser, s.UName)
	} else {
		d.set(fUser, s.UID)
	}
	d.set(fCurrentDirectory, s.Cwd)
	d.set(fProcessID, s.PID)
	d.set(fParentProcessID, s.PPID)
	if !audit.IsUnsetID(s.AUID) {
		d.set(fLogonID, s.AUID)
	}
}

// createdFiles appends the paths of the PATH records the event's syscall
// created (nametype=CREATE), made absolute with the CWD record when
// relative to the working directory (cwdRelative); a name relative to a
// directory descriptor stays relative, since audit does not log that
// directory's path.
func createdFiles(ev *audit.Event, s *audit.Summary, dst []string) []string {
	rel := 0 // 1: relative names are to the working directory, -1: not, 0: not known yet
	for _, r := range ev.Records {
		if r == nil || r.TypeNum != 1302 {
			continue
		}
		if nt, _ := r.Get("nametype"); nt != "CREATE" {
			continue
		}
		name, ok := r.Get("name")
		if !ok || audit.IsSentinel(name) {
			continue
		}
		if !strings.HasPrefix(name, "/") && s.Cwd != "" {
			if rel == 0 {
				rel = -1
				if cwdRelative(ev, s) {
					rel = 1
				}
			}
			if rel > 0 {
				name = path.Join(s.Cwd, name)
			}
		}
		dst = append(dst, name)
	}
	return dst
}

// atSyscalls are the *at syscalls that create a file, by name, with the
// argument that holds the directory descriptor of the created name.
var atSyscalls = map[string]string{
	"openat": "a0", "openat2": "a0", "mkdirat": "a0", "mknodat": "a0",
	"linkat": "a2", "symlinkat": "a1", "renameat": "a2", "renameat2": "a2",
}

// atSyscallNumbers are the numbers of atSyscalls per audit arch, for logs
// without the ENRICHED syscall name.
var atSyscallNumbers = map[string]map[string]string{
	"c000003e": {"257": "openat", "437": "openat2", "258": "mkdirat", "259": "mknodat", "265": "linkat", "266": "symlinkat", "264": "renameat", "316": "renameat2"},
	"c00000b7": {"56": "openat", "437": "openat2", "34": "mkdirat", "33": "mknodat", "37": "linkat", "36": "symlinkat", "38": "renameat", "276": "renameat2"},
	"c00000f3": {"56": "openat", "437": "openat2", "34": "mkdirat", "33": "mknodat", "37": "linkat", "36": "symlinkat", "38": "renameat", "276": "renameat2"},
	"40000028": {"322": "openat", "437": "openat2", "323": "mkdirat", "324": "mknodat", "330": "linkat", "331": "symlinkat", "329": "renameat", "382": "renameat2"},
}

// cwdRelative reports whether a relative name the event's syscall created
// is relative to the working directory: the syscall is not an *at call
// (atSyscalls), or its directory argument is AT_FDCWD (-100, logged as
// ffffff9c, or ffffffffffffff9c when sign-extended) or not logged. An *at call by a
// number of an arch atSyscallNumbers does not know counts as not one.
func cwdRelative(ev *audit.Event, s *audit.Summary) bool {
	for _, r := range ev.Records {
		if r == nil || r.TypeNum != audit.TypeSyscall {
			continue
		}
		name := s.Syscall
		if name != "" && name[0] >= '0' && name[0] <= '9' {
			arch, _ := r.Get("arch")
			name = atSyscallNumbers[arch][name]
		}
		arg, ok := atSyscalls[name]
		if !ok {
			return true
		}
		fd, ok := r.Get(arg)
		return !ok || fd == "ffffff9c" || fd == "ffffffffffffff9c"
	}
	return true
}

// connectSyscalls are the connect syscall numbers per audit arch, for
// logs without the ENRICHED syscall name.
var connectSyscalls = map[string]string{
	"c000003e": "42",  // x86_64
	"c00000b7": "203", // aarch64
	"c00000f3": "203", // riscv64
	"40000028": "283", // arm (EABI)
}

// einprogress is the exit of a non-blocking connect that the kernel goes
// on establishing (-EINPROGRESS, 115 on every arch of connectSyscalls).
const einprogress = "-115"

// initiatedConnect reports whether the event is a connect syscall that
// initiated a connection: one that succeeded, or a non-blocking one that
// returned EINPROGRESS (success=no exit=-115), as curl, Go programs and
// most daemons connect.
func initiatedConnect(ev *audit.Event, s *audit.Summary) bool {
	named := s.Syscall == "connect"
	if !named && (s.Syscall == "" || s.Syscall[0] < '0' || s.Syscall[0] > '9') {
		return false // no syscall, or a name other than connect
	}
	for _, r := range ev.Records {
		if r == nil || r.TypeNum != audit.TypeSyscall {
			continue
		}
		if !named {
			arch, _ := r.Get("arch")
			if nr, ok := connectSyscalls[arch]; !ok || s.Syscall != nr {
				return false
			}
		}
		if s.Outcome == "success" {
			return true
		}
		exit, _ := r.Get("exit")
		return exit == einprogress
	}
	return named && s.Outcome == "success"
}

// destinations appends the inet and inet6 addresses of the event's
// SOCKADDR records as address and port.
func destinations(ev *audit.Event, dst [][2]string) [][2]string {
	for _, r := range ev.Records {
		if r == nil || r.TypeNum != 1306 {
			continue
		}
		h, ok := r.Get("saddr")
		if !ok {
			continue
		}
		sa, ok := audit.DecodeSockaddr(h)
		if !ok || sa.Address == "" {
			continue
		}
		dst = append(dst, [2]string{unmap(sa.Address), strconv.Itoa(sa.Port)})
	}
	return dst
}

// unmap returns the IPv4 address of an IPv4-mapped IPv6 address
// (::ffff:127.0.0.1, which a dual-stack socket connects to), else addr:
// Sigma rules name IPv4 destinations in dotted form. netip writes a
// mapped address, and only such, as ::ffff: and a dotted quad.
func unmap(addr string) string {
	if v4, ok := strings.CutPrefix(addr, "::ffff:"); ok && strings.IndexByte(v4, '.') >= 0 {
		return v4
	}
	return addr
}

// recordField returns the decoded value of field c of record r: "type" is
// the record type; an argument aN of an EXECVE record is args[N] (the
// summary's arguments: audit splits an argument longer than 7500 bytes
// into chunks aN[0], aN[1], ..., and a long argv over several EXECVE
// records, which are all one record to a field map so); upper-case names
// are looked up among the ENRICHED fields first, others among the raw
// fields first.
func recordField(r *audit.Record, c *fieldCond, args []string) (string, bool) {
	if c.name == "type" {
		return r.Type, true
	}
	if r.TypeNum == 1309 {
		if n, ok := argNumber(c.name); ok {
			if n < len(args) {
				return args[n], true
			}
			return "", false
		}
	}
	if c.interp {
		if v, ok := r.GetInterp(c.name); ok {
			return v, true
		}
		return r.Get(c.name)
	}
	if v, ok := r.Get(c.name); ok {
		return v, true
	}
	return r.GetInterp(c.name)
}
