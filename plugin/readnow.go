package plugin

import (
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readyReader reads a pipe or socket without blocking read(2) calls while
// data keeps coming. It polls the descriptor (ppoll with a zero timeout)
// and reads only when the descriptor is readable, both with raw system
// calls that cannot block. When nothing is there it sleeps (a timer) and
// polls again, up to idlePolls times, and only then falls back to a
// blocking read (an idle plugin sleeps in the kernel).
//
// Why: a blocking read makes the Go runtime hand the P off and, when the
// read returns, wake its monitor thread (sysmon), which then polls every
// 20 µs for a millisecond or more. Under auditd's steady trickle that
// happened on every read and cost 16 % of the plugin's CPU at 1000 exec/s
// (perf record of the plugin under a real auditd; docs/performance.md).
//
// Latency: data that arrives while the reader sleeps waits for the sleep
// to end, at most the coalescing delay, as it would in coalescingReader.
// A pipe is enlarged to livePipeSize when the kernel allows it, so that
// the writer finds room while the reader sleeps.
// The end of input (the writer closed) is readable, so it is seen at the
// next poll.
type readyReader struct {
	f     *os.File
	rc    syscall.RawConn
	sleep time.Duration
	pipe  int // the pipe's capacity in bytes; 0 for a socket
}

// livePipeSize is the capacity plugin mode asks for its stdin pipe
// (F_SETPIPE_SZ; the kernel's default is 64 KiB, and an unprivileged
// process may ask for up to /proc/sys/fs/pipe-max-size, 1 MiB by default).
// With more room auditd never waits on the plugin while it lingers
// between reads (coalescingReader), at any rate the plugin keeps up with.
const livePipeSize = 1 << 20

// PipeSize returns the capacity of the pipe being read, 0 when unknown
// (a socket).
func (r *readyReader) PipeSize() int { return r.pipe }

// idlePolls bounds the polls of one Read before it blocks: with the
// default 20 ms delay, an input silent for 60 ms. Polling pays while
// records come every few tens of milliseconds; past that each poll is a
// wake-up that finds nothing, and one blocking read per record costs far
// less (TestPacedCost at 1 event/s: 0.27 % of a core with 3 polls against
// 0.79 % with 50, where 48 of every 50 wake-ups found nothing; at 5/s
// 0.89 against 1.20 %; docs/performance.md, "#20 live").
const idlePolls = 3

// newReadyReader returns r as a readyReader when it is an *os.File on a
// pipe or socket, else r itself. sleep is the wait between polls.
func newReadyReader(r io.Reader, sleep time.Duration) io.Reader {
	f, ok := r.(*os.File)
	if !ok || sleep <= 0 {
		return r
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return r
	}
	kind, pipe := uint32(0), 0
	if err := rc.Control(func(fd uintptr) {
		var st syscall.Stat_t
		if syscall.Fstat(int(fd), &st) == nil {
			kind = st.Mode & syscall.S_IFMT
		}
		if kind == syscall.S_IFIFO {
			// Best effort: a smaller pipe only shortens the lingers.
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, livePipeSize)
			pipe, _ = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		}
	}); err != nil || kind != syscall.S_IFIFO && kind != syscall.S_IFSOCK {
		return r
	}
	return &readyReader{f: f, rc: rc, sleep: sleep, pipe: max(pipe, 0)}
}

func (r *readyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for range idlePolls {
		n, state := r.readNow(p)
		switch state {
		case readData:
			return n, nil
		case readEOF:
			return 0, io.EOF
		case readFailed:
			return r.f.Read(p) // the usual read reports the error
		}
		time.Sleep(r.sleep)
	}
	return r.f.Read(p)
}

// Outcomes of readNow.
const (
	readNothing = iota // not readable yet
	readData
	readEOF
	readFailed
)

// readNow reads into p if the descriptor is readable now.
func (r *readyReader) readNow(p []byte) (n, state int) {
	state = readFailed
	err := r.rc.Control(func(fd uintptr) {
		pfd := pollFd{fd: int32(fd), events: pollIn}
		var zero syscall.Timespec
		ready, _, e := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1,
			uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
		switch {
		case e != 0:
			return
		case ready == 0:
			state = readNothing
			return
		}
		// Readable (data, or the writer closed): read cannot block.
		m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e != 0:
		case m == 0:
			state = readEOF
		default:
			n, state = int(m), readData
		}
	})
	if err != nil {
		return 0, readFailed
	}
	return n, state
}

// pollFd is struct pollfd of poll(2).
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

const pollIn = 0x1 // POLLIN
