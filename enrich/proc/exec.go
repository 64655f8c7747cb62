package proc

import "unsafe"

// Limits on what one table entry keeps of an argv, so that a table of
// MaxEntries entries stays small whatever the command lines are.
const (
	maxArgs      = 64
	maxArgsBytes = 4096
)

// ownSize returns how many bytes ownCopy copies of fields and argv.
func ownSize(fields []string, argv []string) int {
	total, argBytes := 0, 0
	for _, f := range fields {
		total += len(f)
	}
	for _, a := range argv[:min(len(argv), maxArgs)] {
		argBytes += len(a)
	}
	return total + min(argBytes, maxArgsBytes)
}

// ownCopy copies fields (in place) and argv, bounded by maxArgs and
// maxArgsBytes, into one buffer, so that a table entry does not pin a whole
// event's lines: text when they fit in it (the entry's own room), else a
// new one of ownSize bytes. The copied arguments are appended to args
// (which may have room of its own), and the result is returned.
func ownCopy(fields []string, argv []string, args []string, text []byte) []string {
	if len(argv) > maxArgs {
		argv = argv[:maxArgs]
	}
	total := ownSize(fields, argv)
	// The buffer never grows (its capacity is at least the bounded total),
	// so the strings made from it stay valid.
	buf := text[:0:len(text)]
	if total > len(text) {
		buf = make([]byte, 0, total)
	}
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
