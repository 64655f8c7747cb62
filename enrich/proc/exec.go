package proc

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Limits on what one table entry keeps of an argv, so that a table of
// MaxEntries entries stays small whatever the command lines are.
const (
	maxArgs      = 64
	maxArgsBytes = 4096
)

// execSyscalls maps an audit arch (the SYSCALL record's arch= field) to its
// execve and execveat numbers.
var execSyscalls = map[string][2]string{
	"c000003e": {"59", "322"},  // x86_64
	"40000003": {"11", "358"},  // i386
	"c00000b7": {"221", "281"}, // aarch64
	"c00000f3": {"221", "281"}, // riscv64
	"40000028": {"11", "387"},  // arm (EABI)
}

// ExecRecord returns the SYSCALL record of ev when ev is a successful execve
// or execveat, and nil otherwise.
//
// The syscall is recognised by its number for the record's arch (x86_64 59
// and 322, i386, aarch64, riscv64, arm), by the ENRICHED SYSCALL name, or,
// for an arch not in the table, by the presence of an EXECVE record.
func ExecRecord(ev *audit.Event) *audit.Record {
	sc := syscallRecord(ev)
	if sc == nil {
		return nil
	}
	if ok, _ := sc.Get("success"); ok != "yes" {
		return nil
	}
	if name, ok := sc.GetInterp("SYSCALL"); ok {
		return pick(sc, name == "execve" || name == "execveat")
	}
	nr, _ := sc.Get("syscall")
	arch, _ := sc.Get("arch")
	if nums, ok := execSyscalls[arch]; ok {
		return pick(sc, nr == nums[0] || nr == nums[1])
	}
	for _, r := range ev.Records {
		if r.Type == "EXECVE" {
			return sc
		}
	}
	return nil
}

func pick(r *audit.Record, ok bool) *audit.Record {
	if ok {
		return r
	}
	return nil
}

// syscallRecord returns the first SYSCALL record of ev, or nil.
func syscallRecord(ev *audit.Event) *audit.Record {
	for _, r := range ev.Records {
		if r.Type == "SYSCALL" {
			return r
		}
	}
	return nil
}

// taskRecord returns the record that describes the task of ev: the SYSCALL
// record, else an INTEGRITY_RULE record (which carries ppid, pid, uid and exe
// of its own), else nil.
func taskRecord(ev *audit.Event) *audit.Record {
	if r := syscallRecord(ev); r != nil {
		return r
	}
	for _, r := range ev.Records {
		if r.Type == "INTEGRITY_RULE" {
			if _, ok := r.Get("pid"); ok {
				return r
			}
		}
	}
	return nil
}

// Argv returns the argument vector of ev, joined from all its EXECVE records
// (the kernel splits long argument lists over several records with one
// stamp, and long arguments into aN[0], aN[1], … pieces after aN_len).
// The strings share memory with the records. Only arguments with an index
// below limit are returned (limit <= 0 means 64), which also bounds the
// memory a forged argument index can claim.
func Argv(ev *audit.Event, limit int) []string {
	return appendArgv(nil, ev, limit)
}

// appendArgv is Argv appending to args (which may be a caller's stack array).
func appendArgv(args []string, ev *audit.Event, limit int) []string {
	if limit <= 0 {
		limit = maxArgs
	}
	if args == nil {
		n := 0
		for _, r := range ev.Records {
			if r.Type == "EXECVE" {
				n += len(r.Fields)
			}
		}
		args = make([]string, 0, min(n, limit))
	}
	var pieces map[int]*strings.Builder
	for _, r := range ev.Records {
		if r.Type != "EXECVE" {
			continue
		}
		for i := range r.Fields {
			f := &r.Fields[i]
			idx, piece, ok := argIndex(f.Name)
			if !ok || idx >= limit {
				continue
			}
			for len(args) <= idx {
				args = append(args, "")
			}
			if piece {
				if pieces == nil {
					pieces = make(map[int]*strings.Builder)
				}
				b := pieces[idx]
				if b == nil {
					b = &strings.Builder{}
					pieces[idx] = b
				}
				b.WriteString(pieceValue(f))
				continue
			}
			args[idx] = f.Value
		}
	}
	for idx, b := range pieces {
		args[idx] = b.String()
	}
	return args
}

// argIndex parses an EXECVE field name: "aN" gives (N, false), "aN[i]" gives
// (N, true); "argc", "aN_len" and anything else give ok=false.
func argIndex(name string) (idx int, piece, ok bool) {
	if len(name) < 2 || name[0] != 'a' {
		return 0, false, false
	}
	end := 1
	for end < len(name) && name[end] >= '0' && name[end] <= '9' {
		end++
	}
	if end == 1 || end-1 > 6 {
		return 0, false, false
	}
	n, err := strconv.Atoi(name[1:end])
	if err != nil {
		return 0, false, false
	}
	switch rest := name[end:]; {
	case rest == "":
		return n, false, true
	case len(rest) > 2 && rest[0] == '[' && rest[len(rest)-1] == ']':
		return n, true, true
	}
	return 0, false, false
}

// pieceValue returns the decoded bytes of one aN[i] piece. The kernel always
// hex-encodes pieces; a parser that left one undecoded (Bare) is handled too.
func pieceValue(f *audit.Field) string {
	if f.Enc == audit.Hex {
		return f.Value
	}
	if b, err := hex.DecodeString(f.Value); err == nil {
		return string(b)
	}
	return f.Value
}

// ownArgs copies argv into memory of its own, bounded by maxArgs and
// maxArgsBytes, so that a table entry does not pin a whole event's lines.
func ownArgs(argv []string) []string {
	_, args := ownCopy(nil, argv)
	return args
}

// ownCopy copies fields and argv (bounded by maxArgs and maxArgsBytes) into
// one buffer of its own, so that a table entry does not pin a whole
// event's lines: two allocations, the buffer and the argument slice.
func ownCopy(fields []string, argv []string) ([]string, []string) {
	if len(argv) > maxArgs {
		argv = argv[:maxArgs]
	}
	total, argBytes := 0, 0
	for _, f := range fields {
		total += len(f)
	}
	for _, a := range argv {
		argBytes += len(a)
	}
	total += min(argBytes, maxArgsBytes)
	// The buffer never grows (its capacity is the bounded total), so the
	// strings made from it stay valid.
	buf := make([]byte, 0, total)
	own := func(v string) string {
		if v == "" {
			return ""
		}
		start := len(buf)
		buf = append(buf, v...)
		return unsafe.String(&buf[start], len(v))
	}
	for i, f := range fields {
		fields[i] = own(f)
	}
	if len(argv) == 0 {
		return fields, nil
	}
	out := make([]string, 0, len(argv))
	room := maxArgsBytes
	for _, a := range argv {
		if room <= 0 && len(a) > 0 {
			break
		}
		a = a[:min(len(a), room)]
		room -= len(a)
		out = append(out, own(a))
	}
	return fields, out
}
