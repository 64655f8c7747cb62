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
// network_connection rule is evaluated on: field texts and their
// lower-case forms, computed once per event.
type doc struct {
	vals [numFields]string
	low  [numFields]string
	has  uint32
	sc   *scratch
}

func (d *doc) set(f fieldID, v string) {
	d.vals[f] = v
	d.low[f] = d.sc.lower(v)
	d.has |= 1 << f
}

// get returns the text of field f, its lower-case form and whether the
// event has it.
func (d *doc) get(f fieldID) (string, string, bool) {
	return d.vals[f], d.low[f], d.has&(1<<f) != 0
}

// fieldValues yields the lower-cased values of the anchor fields (for
// the anchor index).
func (d *doc) fieldValues(yield func(field, v string)) {
	if _, low, ok := d.get(fImage); ok {
		yield(fieldNames[fImage], low)
	}
}

// scanLiterals scans the lower-cased text of every field for the
// literals of m.
func (d *doc) scanLiterals(m *acMatcher, found []uint64) {
	for f := range numFields {
		if d.has&(1<<f) != 0 {
			m.scan(0, d.low[f], found, true)
		}
	}
}

// setProcess fills the process fields from the event summary and parent;
// the joined command lines and lower-case forms go to d.sc.
func (d *doc) setProcess(s *audit.Summary, parent *audit.Process) {
	set := func(f fieldID, v string) {
		if v != "" {
			d.set(f, v)
		}
	}
	set(fImage, s.Exe)
	if args := s.Args; len(args) > 0 {
		set(fCommandLine, d.sc.join(args))
	} else if len(s.Title) > 0 {
		set(fCommandLine, d.sc.join(s.Title))
	}
	if parent != nil {
		set(fParentImage, parent.Executable)
		set(fParentCommandLine, d.sc.join(parent.Args))
	}
	if s.UName != "" {
		set(fUser, s.UName)
	} else {
		set(fUser, s.UID)
	}
	set(fCurrentDirectory, s.Cwd)
	set(fProcessID, s.PID)
	set(fParentProcessID, s.PPID)
	if !audit.IsUnsetID(s.AUID) {
		set(fLogonID, s.AUID)
	}
}

// createdFiles appends the paths of the PATH records the event's syscall
// created (nametype=CREATE), made absolute with the CWD record when
// relative.
func createdFiles(ev *audit.Event, s *audit.Summary, dst []string) []string {
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
			name = path.Join(s.Cwd, name)
		}
		dst = append(dst, name)
	}
	return dst
}

// connectSyscalls are the connect syscall numbers per audit arch, for
// logs without the ENRICHED syscall name.
var connectSyscalls = map[string]string{
	"c000003e": "42",  // x86_64
	"c00000b7": "203", // aarch64
	"c00000f3": "203", // riscv64
	"40000028": "283", // arm (EABI)
}

// isConnect reports whether the event is a connect syscall.
func isConnect(ev *audit.Event, s *audit.Summary) bool {
	if s.Syscall == "connect" {
		return true
	}
	for _, r := range ev.Records {
		if r != nil && r.TypeNum == audit.TypeSyscall {
			arch, _ := r.Get("arch")
			nr, ok := connectSyscalls[arch]
			return ok && s.Syscall == nr
		}
	}
	return false
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
		dst = append(dst, [2]string{sa.Address, strconv.Itoa(sa.Port)})
	}
	return dst
}

// recordField returns the decoded value of field c of record r: "type" is
// the record type, upper-case names are looked up among the ENRICHED
// fields first, others among the raw fields first.
func recordField(r *audit.Record, c *fieldCond) (string, bool) {
	if c.name == "type" {
		return r.Type, true
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
