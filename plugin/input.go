package plugin

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Framings of the plugin stream (plugins.d format = string | binary).
const (
	FramingString      = "string"
	FramingBinaryAuto  = "binary"       // detect fixed or exact frames from the first frame
	FramingBinaryFixed = "binary-fixed" // auditd <= 4.1.0: 8970-byte data area
	FramingBinaryExact = "binary-exact" // auditd >= 4.1.1: exactly hdr.size bytes
)

// maxAuditMessage is MAX_AUDIT_MESSAGE_LENGTH, the binary data area.
const maxAuditMessage = 8970

const headerSize = 16

// InputError is a line or frame the reader could not use, or one it
// hands on all the same but flags (Flagged). It goes to the parse-error
// log with its raw bytes; the stream stays in sync.
type InputError struct {
	Reason string // too_long, nul_byte, invalid_utf8, no_newline, crlf, empty, bad_frame, queue_full
	Raw    []byte // a bounded copy of the offending bytes
	Offset int64  // byte offset in the stream where the line or frame starts (bad_frame, queue_full: where the reader was)
	Line   int64  // 1-based number of the line in the stream (string framing; queue_full: the dropped batch's first); 0 for frames
	// Flagged is set when the line or frame is processed all the same:
	// it is no rejection (invalid_utf8, crlf, no_newline, and nul_byte
	// when a record is left to parse).
	Flagged bool
	// Silent is set when the problem is only to be counted, not logged:
	// an empty line, or a stream flag after its stream's first line.
	// Raw is then nil.
	Silent bool
	// Detail, when not "", says more than the reason (what a nul_byte
	// line lost).
	Detail string
}

func (e *InputError) Error() string {
	if what, ok := streamFlags[e.Reason]; ok {
		return fmt.Sprintf("input at byte %d: %s: %s", e.Offset, e.Reason, what)
	}
	msg := fmt.Sprintf("input at byte %d: %s", e.Offset, e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// streamFlags are the reasons of lines that are repaired and processed,
// not rejected, and concern the stream rather than the line (how its
// lines end, where it ends), with what they mean. A Reader reports each
// for the first such line only and counts every one (the others reach
// onError as Silent); the error log gives them no share of its rates.
var streamFlags = map[string]string{
	"crlf": "the lines end in CRLF: the \r is dropped and the lines are processed " +
		"(reported for the first such line of the stream, every one counted in input_errors_total)",
	"no_newline": "the input ended inside a line without its newline: the line is processed " +
		"(rejected as truncated if it ends inside a quoted value)",
}

// FormatMismatchError is a stream whose first bytes are in the other
// plugins.d format than the reader's framing: text lines read as binary
// frames, or a binary frame header read as text. Nothing of such a stream
// could be decoded, so the reader stops at once with this error instead of
// rejecting every record.
type FormatMismatchError struct {
	Framing string // the reader's framing ([input] format)
	Stream  string // what the stream holds: "string" or "binary"
}

func (e *FormatMismatchError) Error() string {
	return fmt.Sprintf("input format mismatch: [input] format is %q but the stream is in %s format "+
		"(the plugins.d file says format = %s); set the same format in both", e.Framing, e.Stream, e.Stream)
}

// Reader reads auditd's plugin stream and hands out lines in batches,
// with their line numbers in the stream (see Batch).
//
// It only reads, frames and copies; it never waits on parsing, enrichment
// or sinks: Run sends each batch with a non-blocking send and counts the
// records of a batch that found the queue full as dropped (the queue bound
// is the configured backlog). Lines are strings backed by memory that is
// never reused, so they stay valid after the batch is consumed.
type Reader struct {
	r       *bufio.Reader
	framing string
	maxLine int
	chunk   []byte
	offset  int64
	onError func(*InputError)
	stats   *InputStats
	resync  bool
	// undecided is the fixed layout's padding after the last frame
	// while auto-detection waits for the bytes after it (skipPadding).
	undecided int
	flagged   map[string]bool // the stream flags reported already
	line      int64           // lines read so far (string framing), the current one included
}

// Batch is a run of lines the reader hands out, in stream order, with
// their line numbers in the stream: Lines[0] is line First, and each
// next one the line after, but where gaps says lines the reader did not
// hand out (rejected or empty) came between. Binary frames are not lines:
// First is then 0, and so are the numbers.
type Batch struct {
	Lines []string
	First int64
	gaps  []gap // nil unless lines were skipped inside the batch
	last  int64 // the number of the last line added
}

// gap is lines lines the reader skipped right before Lines[before].
type gap struct {
	before int
	lines  int64
}

// add appends line, whose number in the stream is n (0: not a line).
func (b *Batch) add(line string, n int64) {
	if len(b.Lines) == 0 {
		b.First = n
	} else if n > b.last+1 {
		b.gaps = append(b.gaps, gap{before: len(b.Lines), lines: n - b.last - 1})
	}
	b.last = n
	b.Lines = append(b.Lines, line)
}

// numbers walks the line numbers of a batch: successive calls of number
// return those of Lines[0], Lines[1], … (0 when the stream has no
// lines). It allocates nothing.
type numbers struct {
	b    *Batch
	next int64
	i, g int
}

func (b *Batch) numbers() numbers { return numbers{b: b, next: b.First} }

func (w *numbers) number() int64 {
	if w.g < len(w.b.gaps) && w.b.gaps[w.g].before == w.i {
		w.next += w.b.gaps[w.g].lines
		w.g++
	}
	n := w.next
	w.i++
	if n > 0 {
		w.next++
	}
	return n
}

// InputStats are the reader's counters.
type InputStats struct {
	Lines     *metrics.Counter
	Bytes     *metrics.Counter
	Dropped   *metrics.Counter
	Errors    map[string]*metrics.Counter
	QueueLen  *metrics.Gauge
	QueueHigh *metrics.Gauge
	// Unprocessed counts the records still queued when plugin mode
	// stopped on a signal, never processed (added at shutdown; registered
	// here so that it is scraped from the start, at 0).
	Unprocessed *metrics.Counter
}

// NewInputStats registers the input counters in reg.
func NewInputStats(reg *metrics.Registry) *InputStats {
	s := &InputStats{
		Lines:       reg.Counter("audisp_enrich_input_records_total", "", "Records read from the input."),
		Bytes:       reg.Counter("audisp_enrich_input_bytes_total", "", "Bytes read from the input."),
		Dropped:     reg.Counter("audisp_enrich_input_dropped_records_total", "", "Records dropped because the pipeline queue was full."),
		QueueLen:    reg.Gauge("audisp_enrich_input_queue_records", "", "Records waiting between the reader and the pipeline."),
		QueueHigh:   reg.Gauge("audisp_enrich_input_queue_high_water_records", "", "Most records ever waiting in the input queue."),
		Unprocessed: reg.Counter("audisp_enrich_input_unprocessed_records_total", "", "Records still queued for the pipeline at shutdown, never processed."),
		Errors:      map[string]*metrics.Counter{},
	}
	for _, r := range []string{"too_long", "nul_byte", "invalid_utf8", "no_newline", "crlf", "empty", "bad_frame", "format_mismatch"} {
		s.Errors[r] = reg.Counter("audisp_enrich_input_errors_total", `reason="`+r+`"`, "Input lines or frames with problems, by reason.")
	}
	return s
}

// NewReader returns a reader of r with the given framing. maxLine bounds a
// string-format line (at least 64 KiB is sensible); onError is called for
// every problem, from the reading goroutine.
func NewReader(r io.Reader, framing string, maxLine int, stats *InputStats, onError func(*InputError)) (*Reader, error) {
	switch framing {
	case FramingString, FramingBinaryAuto, FramingBinaryFixed, FramingBinaryExact:
	default:
		return nil, fmt.Errorf("unknown input format %q (want string, binary, binary-fixed or binary-exact)", framing)
	}
	if maxLine < 1024 {
		maxLine = 1024
	}
	return &Reader{
		r:       bufio.NewReaderSize(r, max(maxLine+1, 2*(headerSize+maxAuditMessage))),
		framing: framing, maxLine: maxLine, stats: stats, onError: onError,
	}, nil
}

// coalescingReader delays the read that follows a short one (see
// conf.InputConfig.Coalesce): while data trickles in, the pipe collects it
// and one read takes it all, instead of a wake-up and a read per record.
// The delay is delay at most, and never longer than the pipe would take to
// fill half its capacity at the rate the last read saw, so a fast writer
// never finds the pipe full because of it. A read that filled the buffer
// it was given (more may be waiting) or took half the pipe or more is
// followed at once.
type coalescingReader struct {
	r     io.Reader
	delay time.Duration
	half  int           // half the pipe's capacity: a long read
	wait  time.Duration // before the next read
	last  time.Time     // when the last read returned
}

// defaultPipeHalf is half the kernel's default pipe capacity (64 KiB),
// the long-read size when the reader cannot tell its pipe's.
const defaultPipeHalf = 32 << 10

// NewCoalescingReader returns r delaying reads after short ones by up to
// delay; r itself when delay is 0. When r reports its pipe's capacity
// (PipeSize, as plugin mode's stdin reader does), half of it is a long
// read; otherwise 32 KiB.
func NewCoalescingReader(r io.Reader, delay time.Duration) io.Reader {
	if delay <= 0 {
		return r
	}
	half := defaultPipeHalf
	if p, ok := r.(interface{ PipeSize() int }); ok && p.PipeSize() > 0 {
		half = p.PipeSize() / 2
	}
	return &coalescingReader{r: r, delay: delay, half: half, last: time.Now()}
}

func (c *coalescingReader) Read(p []byte) (int, error) {
	if c.wait > 0 {
		time.Sleep(c.wait)
	}
	n, err := c.r.Read(p)
	now := time.Now()
	c.wait = 0
	if n < len(p) {
		c.wait = coalesceWait(c.delay, n, now.Sub(c.last), c.half)
	}
	c.last = now
	return n, err
}

// coalesceWait is the wait before the next read after a read of n bytes
// that came in over dt and did not fill its buffer: none after a long
// read (half the pipe, half) or none at all, else delay, cut to the time
// the pipe takes to collect half bytes at n/dt.
func coalesceWait(delay time.Duration, n int, dt time.Duration, half int) time.Duration {
	if n <= 0 || n >= half {
		return 0
	}
	return min(delay, time.Duration(float64(dt)*float64(half)/float64(n)))
}

// Framing returns the framing in use; after the first binary frame, auto
// detection has settled on binary-fixed or binary-exact.
func (rd *Reader) Framing() string { return rd.framing }

// Run reads until EOF or a read error and sends batches of lines to out
// without ever blocking on it (plugin mode). It returns nil at EOF, and a
// *FormatMismatchError (counted as format_mismatch) before reading on when
// the stream's first bytes are in the other format.
func (rd *Reader) Run(out chan<- Batch) error { return rd.run(out, false) }

// RunBlocking is Run for replay: it waits for room in out instead of
// dropping, since a file can wait.
func (rd *Reader) RunBlocking(out chan<- Batch) error { return rd.run(out, true) }

func (rd *Reader) run(out chan<- Batch, block bool) error {
	if err := rd.checkFormat(); err != nil {
		return err
	}
	batch := Batch{Lines: make([]string, 0, 256)}
	flush := func() {
		n := len(batch.Lines)
		if n == 0 {
			return
		}
		if block {
			out <- batch
			batch = Batch{Lines: make([]string, 0, 256)}
			return
		}
		select {
		case out <- batch:
			q := rd.stats.QueueLen.Value() + int64(n)
			rd.stats.QueueLen.Set(q)
			if q > rd.stats.QueueHigh.Value() {
				rd.stats.QueueHigh.Set(q)
			}
		default:
			rd.stats.Dropped.Add(uint64(n))
			what := fmt.Sprintf("pipeline queue full: dropped %d records", n)
			if batch.First > 0 {
				what += fmt.Sprintf(" (lines %d to %d)", batch.First, batch.last)
			}
			rd.onError(&InputError{Reason: "queue_full", Offset: rd.offset, Line: batch.First, Raw: []byte(what)})
		}
		batch = Batch{Lines: make([]string, 0, 256)}
	}
	for {
		line, err := rd.next()
		if line != "" {
			batch.add(line, rd.line)
			if len(batch.Lines) == cap(batch.Lines) || rd.r.Buffered() == 0 {
				flush()
			}
		}
		if err != nil {
			flush()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// checkFormat tells a stream in the other format apart from the first
// bytes: string-format records begin "type=" or "node=", which is never a
// valid binary header; a valid binary header begins with 3 NUL bytes,
// which no text line does. Anything else is left to the framing's own
// error handling.
func (rd *Reader) checkFormat() error {
	b, _ := rd.r.Peek(headerSize)
	var stream string
	switch {
	case rd.framing == FramingString && len(b) == headerSize && parseHeader(b).valid():
		stream = "binary"
	case rd.framing != FramingString && (bytes.HasPrefix(b, []byte("type=")) || bytes.HasPrefix(b, []byte("node="))):
		stream = "string"
	default:
		return nil
	}
	rd.stats.Errors["format_mismatch"].Inc()
	return &FormatMismatchError{Framing: rd.framing, Stream: stream}
}

// next returns the next line ("" with nil error when a line was rejected).
func (rd *Reader) next() (string, error) {
	if rd.framing == FramingString {
		return rd.nextString()
	}
	return rd.nextFrame()
}

func (rd *Reader) nextString() (string, error) {
	b, err := rd.r.ReadSlice('\n')
	// Over the limit: a line longer than the buffer, a line whose text
	// before its newline is, or a last line without newline that is.
	if errors.Is(err, bufio.ErrBufferFull) || (err == nil && len(b) > rd.maxLine+1) ||
		(errors.Is(err, io.EOF) && len(b) > rd.maxLine) {
		// Report a bounded head and skip to the newline.
		head := append([]byte(nil), b[:min(len(b), 4096)]...)
		n := int64(len(b))
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = rd.r.ReadSlice('\n')
			n += int64(len(b))
		}
		rd.offset += n
		rd.line++
		rd.stats.Bytes.Add(uint64(n))
		rd.stats.Errors["too_long"].Inc()
		rd.onError(&InputError{Reason: "too_long", Raw: head, Offset: rd.offset - n, Line: rd.line})
		return "", err
	}
	start := rd.offset // where the line starts: every report gives it
	rd.offset += int64(len(b))
	rd.stats.Bytes.Add(uint64(len(b)))
	read := len(b) > 0 // a line, not the end of the input
	if read {
		rd.line++
	}
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
		if len(b) > 0 && b[len(b)-1] == '\r' {
			// A CRLF line end (a log that went through a Windows tool or
			// a SIEM export; auditd writes none): the \r would end the
			// last value. It is dropped, and the line flagged.
			b = b[:len(b)-1]
			rd.flag("crlf", "", b, start)
		}
	} else if len(b) > 0 {
		// The input ended inside a line: auditd stopped mid-write, or a
		// log is still being written. The line may be whole but for its
		// newline, so it is flagged and still parsed (the parser rejects
		// it as truncated when it ends inside a quoted value).
		rd.flag("no_newline", "", b, start)
	}
	if len(b) == 0 {
		if read {
			// A blank line: nothing to parse, counted (so that lines
			// read add up), not logged.
			rd.stats.Errors["empty"].Inc()
			rd.onError(&InputError{Reason: "empty", Offset: start, Line: rd.line, Silent: true})
		}
		return "", err
	}
	if bytes.IndexByte(b, 0) >= 0 {
		if b = rd.afterNULs(b, start); b == nil {
			return "", err
		}
	} else if !utf8.Valid(b) {
		rd.flag("invalid_utf8", invalidUTF8, b, start)
	}
	return rd.keep(b), err
}

// afterNULs returns the part of a line holding NUL bytes that is to be
// parsed, or nil when none is (the line is rejected). Such a line is
// what a power loss leaves in audit.log: the blocks not yet written when
// it struck read as NULs, and the next auditd start appends after them,
// on the same line. The part parsed is the last record in the line that
// begins the line or right after a NUL (with "type=" or "node="): it is
// flagged nul_byte once, saying how many bytes were skipped before it,
// and may still hold NULs of its own (a value that holds one). A line
// without such a record is rejected as nul_byte, and only so: the parser
// never sees it. off is where the line starts in the stream.
func (rd *Reader) afterNULs(b []byte, off int64) []byte {
	at := -1
	if isRecordStart(b) {
		at = 0
	}
	for i := bytes.IndexByte(b, 0); i >= 0; {
		j := i + 1
		if isRecordStart(b[j:]) {
			at = j
		}
		n := bytes.IndexByte(b[j:], 0)
		if n < 0 {
			break
		}
		i = j + n
	}
	switch {
	case at < 0:
		rd.stats.Errors["nul_byte"].Inc()
		rd.onError(&InputError{Reason: "nul_byte", Raw: append([]byte(nil), b[:min(len(b), 4096)]...), Offset: off, Line: rd.line,
			Detail: "no record in the line (none begins it or follows a NUL byte): the line is skipped"})
		return nil
	case at == 0:
		rd.flag("nul_byte", "NUL bytes inside the record: the line is processed as it is", b, off)
		return b
	}
	rest := b[at:]
	rd.flag("nul_byte", fmt.Sprintf("skipped %d bytes (%d of them NUL) before the record that follows them: the record is processed",
		at, bytes.Count(b[:at], []byte{0})), rest, off)
	return rest
}

// invalidUTF8 is what an invalid_utf8 flag says.
const invalidUTF8 = "not valid UTF-8: the line is processed all the same"

// isRecordStart reports whether b begins like a string-format record.
func isRecordStart(b []byte) bool {
	return bytes.HasPrefix(b, []byte("type=")) || bytes.HasPrefix(b, []byte("node="))
}

// flag counts and reports a line that is still handed on, with a bounded
// copy of b (the line, or what of it is handed on) and detail, saying
// how it is processed; off is where the line starts in the stream, and
// its number is the current line's (0 for a frame). A stream flag
// (streamFlags, which says it all) is reported for its first line only;
// the others reach onError as Silent.
func (rd *Reader) flag(reason, detail string, b []byte, off int64) {
	rd.stats.Errors[reason].Inc()
	if _, ok := streamFlags[reason]; ok {
		if rd.flagged[reason] {
			rd.onError(&InputError{Reason: reason, Offset: off, Line: rd.line, Flagged: true, Silent: true})
			return
		}
		if rd.flagged == nil {
			rd.flagged = map[string]bool{}
		}
		rd.flagged[reason] = true
	}
	rd.onError(&InputError{Reason: reason, Raw: append([]byte(nil), b[:min(len(b), 4096)]...), Offset: off, Line: rd.line, Flagged: true, Detail: detail})
}

// keep copies b into the chunk slab, counts it as a record, and returns
// it as a string.
func (rd *Reader) keep(b []byte) string {
	rd.stats.Lines.Inc()
	if cap(rd.chunk)-len(rd.chunk) < len(b) {
		rd.chunk = make([]byte, 0, max(256<<10, len(b)))
	}
	start := len(rd.chunk)
	rd.chunk = append(rd.chunk, b...)
	s := rd.chunk[start:len(rd.chunk):len(rd.chunk)]
	return unsafe.String(unsafe.SliceData(s), len(s))
}

// header is struct audit_dispatcher_header (host byte order: little endian
// on the platforms we build for).
type header struct{ ver, hlen, typ, size uint32 }

func parseHeader(b []byte) header {
	return header{binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]),
		binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])}
}

func (h header) valid() bool {
	return h.ver <= 1 && h.hlen == headerSize && h.size <= maxAuditMessage && h.typ > 0 && h.typ < 10000
}

func (rd *Reader) nextFrame() (string, error) {
	if pad := rd.undecided; pad > 0 {
		rd.undecided = 0
		if err := rd.settle(pad); err != nil {
			return "", err
		}
	}
	hb, err := rd.r.Peek(headerSize)
	if err != nil {
		if len(hb) > 0 && errors.Is(err, io.EOF) {
			rd.badFrame(hb, "truncated header")
			rd.skip(len(hb))
		}
		return "", err
	}
	h := parseHeader(hb)
	if !h.valid() {
		// Out of sync: skip one byte at a time until a header validates,
		// reporting the episode once.
		if !rd.resync {
			rd.badFrame(hb, "invalid header")
			rd.resync = true
		}
		rd.skip(1)
		return "", nil
	}
	rd.resync = false
	start := rd.offset
	rd.skip(headerSize)
	payload := make([]byte, h.size)
	n, err := io.ReadFull(rd.r, payload)
	rd.offset += int64(n)
	rd.stats.Bytes.Add(uint64(n))
	if err != nil {
		rd.badFrame(payload[:n], "truncated payload")
		return "", io.EOF
	}
	if err := rd.skipPadding(h); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line := rd.frameLine(h, payload)
	if len(line) == 0 {
		return "", nil
	}
	if bytes.IndexByte(line, 0) >= 0 {
		rd.flag("nul_byte", "NUL bytes inside the record: the frame is processed as it is", line, start)
	} else if !utf8.Valid(line) {
		rd.flag("invalid_utf8", invalidUTF8, line, start)
	}
	return rd.keep(line), nil
}

// skip discards n bytes, counted as read; the error is Discard's (io.EOF
// when the input ends first).
func (rd *Reader) skip(n int) error {
	n, err := rd.r.Discard(n)
	rd.offset += int64(n)
	rd.stats.Bytes.Add(uint64(n))
	return err
}

// skipPadding settles auto-detection and skips the unused part of a fixed
// 8970-byte data area. Auto-detection decides on the bytes after the
// first frame shorter than 8970: a header right there means exact frames;
// a header right after the rest of an 8970-byte data area, or no header
// anywhere in it before the input ends, means fixed ones (the unused
// area holds zeros or old text, never a header). A header elsewhere is an
// exact stream with bytes between frames (a short or desynchronised
// write, which auditd <= 4.1.x could make): a bad frame, and the reader
// resynchronises on that header; detection waits for a later frame.
//
// Detection never holds the frame it follows: when nothing after the
// frame has been read yet, the frame is handed out and the decision is
// taken on the next call (settle), since in an exact stream the next
// bytes come only with the next record. A fixed frame's data area comes
// in the same write as its header, so waiting for it waits for no later
// record; bytes past it are looked at only when already read.
func (rd *Reader) skipPadding(h header) error {
	pad := maxAuditMessage - int(h.size)
	if rd.framing == FramingBinaryAuto && pad > 0 {
		// A full data area (pad 0) tells the layouts apart no better
		// than a header does: decide on a later, shorter frame.
		if rd.r.Buffered() == 0 {
			rd.undecided = pad
			return nil
		}
		return rd.settle(pad)
	}
	return rd.discardPadding(pad)
}

// settle decides auto-detection on the bytes after a frame whose data
// area would have pad unused bytes in the fixed layout, then skips them
// if the layout is fixed (see skipPadding).
func (rd *Reader) settle(pad int) error {
	next, err := rd.r.Peek(headerSize)
	switch {
	case len(next) == headerSize && parseHeader(next).valid():
		rd.framing = FramingBinaryExact
		return nil
	case len(next) == 0:
		return err
	}
	area, _ := rd.r.Peek(min(rd.r.Buffered(), pad+headerSize))
	if len(area) < pad && !headerIn(area) {
		area, _ = rd.r.Peek(pad) // the rest of a fixed data area; less only at the end of the input
	}
	if len(area) == pad+headerSize && parseHeader(area[pad:]).valid() || !headerIn(area) {
		rd.framing = FramingBinaryFixed
		return rd.discardPadding(pad)
	}
	rd.badFrame(next, "neither a frame header nor a padded 8970-byte data area after a frame")
	rd.resync = true // the resynchronisation that follows is this episode
	return nil
}

// discardPadding skips a fixed frame's pad unused bytes, counted as read.
func (rd *Reader) discardPadding(pad int) error {
	if rd.framing != FramingBinaryFixed || pad <= 0 {
		return nil
	}
	return rd.skip(pad)
}

// headerIn reports whether a valid frame header starts anywhere in b.
func headerIn(b []byte) bool {
	for i := 0; i+headerSize <= len(b); i++ {
		if parseHeader(b[i:]).valid() {
			return true
		}
	}
	return false
}

// frameLine turns a frame into a string-format line the way auditd's
// string mode does: VER0 payloads get "type=NAME msg=" in front; the text
// ends at the first NUL (VER0 is printed with %.*s); embedded newlines
// become spaces.
func (rd *Reader) frameLine(h header, p []byte) []byte {
	if i := bytes.IndexByte(p, 0); i >= 0 && h.ver == 0 {
		p = p[:i]
	}
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	for i, c := range p {
		if c == '\n' {
			p[i] = ' '
		}
	}
	if h.ver == 1 {
		return p
	}
	name := audit.TypeName(uint16(h.typ))
	out := make([]byte, 0, len("type= msg=")+len(name)+len(p))
	out = append(out, "type="...)
	out = append(out, name...)
	out = append(out, " msg="...)
	return append(out, p...)
}

func (rd *Reader) badFrame(b []byte, why string) {
	rd.stats.Errors["bad_frame"].Inc()
	rd.onError(&InputError{Reason: "bad_frame", Raw: append([]byte(why+": "), b[:min(len(b), 4096)]...), Offset: rd.offset})
}
