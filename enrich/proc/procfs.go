package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat starttime. It is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// procFS reads process facts from a procfs mount. Each read is bounded in
// bytes: exe is a readlink, cmdline is cut at maxArgsBytes, stat and status
// at 4 KiB (comm, in stat, at 15 bytes by the kernel).
type procFS struct {
	root      string // "/proc"
	bootMilli int64  // boot time, unix milliseconds (btime of /proc/stat)
}

func newProcFS(root string) (*procFS, error) {
	b, err := readBounded(root+"/stat", 64<<10)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s/stat: btime %q: %w", root, v, err)
			}
			return &procFS{root: root, bootMilli: sec * 1000}, nil
		}
	}
	return nil, fmt.Errorf("%s/stat: no btime line", root)
}

// errGone is returned when the process does not exist (any more).
var errGone = errors.New("no such process")

// read returns the image of the live process pid. StartMilli is the process
// start (its fork, not its last exec) with one-second precision, since btime
// has whole seconds.
//
// When the exe link cannot be read, the image has no Exe but the comm of
// /proc/<pid>/stat as Comm, and unreadable reports whether the link was
// there but refused (any error but "does not exist"): the kernel lets only
// a reader with ptrace access to the process read it, so once the plugin
// runs as its service user, without capabilities, every other user's
// process is such a one, while its stat, cmdline and status stay
// readable. A kernel thread (no exe link) and a process that exits during
// the read have no Exe either, but are not unreadable.
func (p *procFS) read(pid int) (img Image, unreadable bool, err error) {
	dir := p.root + "/" + strconv.Itoa(pid)
	stat, err := readBounded(dir+"/stat", 4096)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return Image{}, false, errGone
		}
		return Image{}, false, err
	}
	comm, ppid, start, err := parseStat(stat)
	if err != nil {
		return Image{}, false, fmt.Errorf("%s/stat: %w", dir, err)
	}
	img = Image{PPID: ppid, StartMilli: p.bootMilli + start*1000/clockTicks, Source: SourceProc}
	// A kernel thread has no exe and an empty cmdline; Args is then nil.
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		img.Exe = exe
	} else {
		img.Comm, unreadable = string(comm), !errors.Is(err, os.ErrNotExist)
	}
	if cmd, err := readBounded(dir+"/cmdline", maxArgsBytes); err == nil {
		img.Args = splitCmdline(cmd)
	}
	if status, err := readBounded(dir+"/status", 4096); err == nil {
		img.UID = statusUID(status)
	}
	return img, unreadable, nil
}

// parseStat returns comm (field 2, a slice of b), ppid (field 4) and
// starttime (field 22, clock ticks since boot) of a /proc/<pid>/stat line.
// comm is in parentheses and may hold spaces and parentheses itself, so it
// runs from the first '(' to the last ')', and the other fields are counted
// from that last ')'.
func parseStat(b []byte) (comm []byte, ppid int, start int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	first := bytes.IndexByte(b, '(')
	if i < 0 || first < 0 || first > i {
		return nil, 0, 0, errors.New("no comm in parentheses")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 {
		return nil, 0, 0, fmt.Errorf("%d fields after comm, want at least 20", len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return nil, 0, 0, fmt.Errorf("ppid: %w", err)
	}
	start, err = strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("starttime: %w", err)
	}
	return b[first+1 : i], ppid, start, nil
}

// splitCmdline splits a NUL-separated /proc/<pid>/cmdline into owned strings.
func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) > maxArgs {
		parts = parts[:maxArgs]
	}
	return parts
}

// statusUID returns the real uid from the "Uid:" line of /proc/<pid>/status.
func statusUID(b []byte) string {
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			if f := strings.Fields(string(v)); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// readBounded reads at most max bytes of a file into a new buffer (see
// readInto).
func readBounded(name string, max int) ([]byte, error) {
	buf := make([]byte, max)
	n, err := readInto(name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// readInto reads the start of a procfs file into buf and returns how many
// bytes it read. It makes three system calls, open, one read and close,
// where os.Open and io.ReadFull make nine on Linux (os.Open sets the
// descriptor non-blocking, tries to add it to the poller, which refuses
// regular files, and sets it back; ReadFull reads again to see the end):
// plugin mode reads a cgroup file for each exec, and every system call
// counts there. One read is enough: a procfs file is generated whole for
// each read(2) (the seq_file single-record files: stat, status, cgroup;
// cmdline copies up to the count asked), so a read that returns less than
// asked has reached the end, and a file as long as buf is cut at its size.
// The errors are *os.PathError, so errors.Is(err, os.ErrNotExist) tells a
// process that is gone.
func readInto(name string, buf []byte) (int, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer syscall.Close(fd)
	if len(buf) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, &os.PathError{Op: "read", Path: name, Err: err}
		}
		return n, nil
	}
}
