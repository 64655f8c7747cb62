package proc

import (
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

// ownCopy copies fields (in place) and argv, bounded by maxArgs and
// maxArgsBytes, into one buffer of its own, so that a table entry does not
// pin a whole event's lines. The copied arguments are appended to args
// (which may have room of its own), and the result is returned.
func ownCopy(fields []string, argv []string, args []string) []string {
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
	room := maxArgsBytes
	for _, a := range argv {
		if room <= 0 && len(a) > 0 {
			break
		}
		a = a[:min(len(a), room)]
		room -= len(a)
		args = append(args, own(a))
	}
	return args
}
