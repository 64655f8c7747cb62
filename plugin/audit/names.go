package audit

// Field names interned by the parser. Each field of a record the Parser
// makes gets a FieldRef beside it (Record.Refs): the NameID of its name (0
// for names outside the table) and where its value lies in the line; the
// record gets a mask of the ids it holds (Record.NameMask). A reader
// looking for a few named fields tests the mask and reads 8 bytes per
// field, instead of every field's name from the line and its 56-byte
// Field.

// NameID is the number of a well-known field name; 0 stands for every
// other name.
type NameID uint8

// nameFlagUntrusted marks a name written through the kernel's
// untrusted-string rule: quoted when plain, upper-case hex otherwise
// (auparse typetab.h, kernel audit_log_untrustedstring).
const nameFlagUntrusted = 1

// knownNames are the interned names; NameID i is knownNames[i-1]. The
// first 63 (ids 1 to 63) have a bit of their own in NameMask: the names
// of the kernel's SYSCALL, PATH, CWD, EXECVE and PROCTITLE records and
// the ENRICHED names of SYSCALL come first. At most 255 names.
var knownNames = [...]struct {
	name  string
	flags uint8
}{
	{"arch", 0}, {"syscall", 0}, {"success", 0}, {"exit", 0}, {"a0", 0}, {"a1", 0}, {"a2", 0}, {"a3", 0},
	{"items", 0}, {"ppid", 0}, {"pid", 0}, {"auid", 0}, {"uid", 0}, {"gid", 0}, {"euid", 0}, {"suid", 0},
	{"fsuid", 0}, {"egid", 0}, {"sgid", 0}, {"fsgid", 0}, {"tty", 0}, {"ses", 0},
	{"comm", nameFlagUntrusted}, {"exe", nameFlagUntrusted}, {"subj", 0}, {"key", nameFlagUntrusted},
	{"item", 0}, {"name", nameFlagUntrusted}, {"inode", 0}, {"dev", nameFlagUntrusted}, {"mode", 0},
	{"ouid", 0}, {"ogid", 0}, {"rdev", 0}, {"obj", 0}, {"nametype", 0},
	{"cwd", nameFlagUntrusted}, {"proctitle", nameFlagUntrusted}, {"argc", 0},
	{"a4", 0}, {"a5", 0}, {"a6", 0}, {"a7", 0}, {"saddr", 0},
	{"ARCH", 0}, {"SYSCALL", 0}, {"AUID", 0}, {"UID", 0}, {"GID", 0}, {"EUID", 0}, {"SUID", 0},
	{"FSUID", 0}, {"EGID", 0}, {"SGID", 0}, {"FSGID", 0}, {"OUID", 0}, {"OGID", 0}, {"SADDR", 0},
	{"msg", 0}, {"op", 0}, {"res", 0}, {"unit", 0},
	{"acct", nameFlagUntrusted}, // 63: the last with a bit of its own
	{"hostname", nameFlagUntrusted}, {"addr", 0}, {"terminal", nameFlagUntrusted},
	{"path", nameFlagUntrusted}, {"file", nameFlagUntrusted}, {"watch", nameFlagUntrusted},
	{"cmd", nameFlagUntrusted}, {"dir", nameFlagUntrusted}, {"vm", nameFlagUntrusted},
	{"ocomm", nameFlagUntrusted}, {"grp", nameFlagUntrusted}, {"new_group", nameFlagUntrusted},
	{"sw", nameFlagUntrusted}, {"root_dir", nameFlagUntrusted}, {"data", nameFlagUntrusted},
	{"old_chardev", nameFlagUntrusted}, {"new_chardev", nameFlagUntrusted},
	{"cgroup", nameFlagUntrusted},
	{"id", 0}, {"exit_status", 0}, {"list", 0}, {"audit_enabled", 0}, {"old", 0}, {"ver", 0},
	{"format", 0}, {"kernel", 0}, {"fe", 0}, {"fi", 0}, {"fp", 0}, {"fver", 0}, {"pa", 0}, {"pe", 0},
	{"pi", 0}, {"pp", 0}, {"frootid", 0}, {"old_pa", 0}, {"old_pe", 0}, {"old_pi", 0}, {"old_pp", 0},
	{"cap_fe", 0}, {"cap_fi", 0}, {"cap_fp", 0}, {"cap_fver", 0}, {"cap_frootid", 0},
}

const (
	nameSlots  = 512 // open addressing, a power of two above twice the names
	maxNameLen = 16  // longer names are never interned
)

var (
	// nameSlot maps a hash slot to the id of the name found there (0:
	// empty), probed linearly.
	nameSlot  [nameSlots]NameID
	nameKeys  [256]nameKey
	nameFlags [256]uint8
	nameTexts [256]string
)

// nameKey is a name of up to maxNameLen bytes packed into two words
// (byte k at bits 8*(k%8) of word k/8, zeros after the name), and its
// length: the parser packs each name while it reads it, and compares
// words instead of calling a string comparison.
type nameKey struct {
	w [2]uint64
	n int
}

func init() {
	for i, n := range knownNames {
		id := NameID(i + 1)
		if len(n.name) > maxNameLen || int(id) != i+1 {
			panic("audit: bad interned name " + n.name)
		}
		w := packName(n.name)
		nameTexts[id], nameFlags[id], nameKeys[id] = n.name, n.flags, nameKey{w: w, n: len(n.name)}
		h := nameHash(w[0], w[1], len(n.name))
		for nameSlot[h] != 0 {
			h = (h + 1) & (nameSlots - 1)
		}
		nameSlot[h] = id
	}
}

// packName packs the first maxNameLen bytes of s as nameKey does.
func packName(s string) (w [2]uint64) {
	for k := 0; k < len(s) && k < maxNameLen; k++ {
		w[k>>3] |= uint64(s[k]) << (k & 7 * 8)
	}
	return w
}

// nameHash hashes a packed name.
func nameHash(w0, w1 uint64, n int) uint {
	return uint((w0*0x9e3779b97f4a7c15 ^ w1*0xc2b2ae3d27d4eb4f ^ uint64(n)) >> (64 - 9))
}

// lookupName returns the NameID of the name of n bytes packed as w0, w1
// (packName), 0 when it is not interned.
func lookupName(w0, w1 uint64, n int) NameID {
	if n == 0 || n > maxNameLen {
		return 0
	}
	for h := nameHash(w0, w1, n); ; h = (h + 1) & (nameSlots - 1) {
		id := nameSlot[h]
		if k := &nameKeys[id]; id == 0 || k.w[0] == w0 && k.w[1] == w1 && k.n == n {
			return id
		}
	}
}

// LookupName returns the NameID of a field name, 0 when it is not among
// the interned names.
func LookupName(s string) NameID {
	w := packName(s)
	return lookupName(w[0], w[1], len(s))
}

// Name returns the field name of id ("" for 0).
func (id NameID) Name() string { return nameTexts[id] }

// Bit returns the bit of id in NameMask masks: ids 1 to 63 have their
// own, higher ids share them (id % 64), and 0 has bit 0.
func (id NameID) Bit() uint64 { return 1 << (id & 63) }

// FieldRef is a compact reference to one field of a record the Parser
// made: its interned name, and where its decoded value lies in the
// record's Line when it is a slice of it (8 bytes, where a Field takes
// 56: a reader that looks for a few fields reads far less memory).
type FieldRef struct {
	off uint32 // the value is Line[off:off+n]
	n   uint16
	id  NameID
	far bool // the value is not a slice of Line (decoded hex, or too long): read the Field
}

// ID returns the interned name of the field.
func (f FieldRef) ID() NameID { return f.id }

// Refs returns a FieldRef for every field of r, those of Fields then
// those of Interp, in their order; nil when r did not come from
// Parser.Parse (then see LookupName). The slice belongs to the record:
// do not change it, and do not keep it past the record's release.
func (r *Record) Refs() []FieldRef { return r.refs }

// ValueAt returns the decoded value of the field of r that Refs()[k]
// refers to (Fields then Interp), reading the Field only when the value
// is not a slice of Line.
func (r *Record) ValueAt(k int) string {
	f := r.refs[k]
	if !f.far {
		return r.Line[f.off : f.off+uint32(f.n)]
	}
	if k < len(r.Fields) {
		return r.Fields[k].Value
	}
	return r.Interp[k-len(r.Fields)].Value
}

// NameMask returns the union of the Bit of every field's NameID (raw,
// nested and ENRICHED fields alike): a field whose id's bit is not set is
// not in r. For a record that did not come from Parser.Parse it is every
// bit.
func (r *Record) NameMask() uint64 {
	if r.refs == nil && len(r.Fields)+len(r.Interp) > 0 {
		return ^uint64(0)
	}
	return r.names
}

// GetID returns what Get(id.Name()) returns, for an id other than 0,
// without reading the fields' names (nor, mostly, the fields).
func (r *Record) GetID(id NameID) (string, bool) {
	if r.refs == nil {
		return r.Get(id.Name())
	}
	if r.names&id.Bit() != 0 {
		for k, f := range r.refs[:len(r.Fields)] {
			if f.id == id {
				return r.ValueAt(k), true
			}
		}
	}
	return "", false
}

// GetInterpID returns what GetInterp(id.Name()) returns, for an id
// other than 0, without reading the fields' names (nor, mostly, the
// fields).
func (r *Record) GetInterpID(id NameID) (string, bool) {
	if r.refs == nil {
		return r.GetInterp(id.Name())
	}
	if r.names&id.Bit() != 0 {
		n := len(r.Fields)
		for k, f := range r.refs[n:] {
			if f.id == id {
				return r.ValueAt(n + k), true
			}
		}
	}
	return "", false
}
