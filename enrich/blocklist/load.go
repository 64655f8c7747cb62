package blocklist

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// LineError is a malformed line in a list file. A file with any malformed
// line is rejected as a whole: the list keeps its previous index.
type LineError struct {
	File   string
	Line   int // 1-based
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// fileID tells whether a list file changed since it was last read.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64 // Unix nanoseconds
}

func statID(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

// loadFile reads and indexes the list file of lc. The returned fileID is
// that of the file actually read (taken from the open descriptor), also
// when the content is rejected.
func loadFile(lc *ListConfig) (*index, fileID, error) {
	f, err := os.Open(lc.Path)
	if err != nil {
		// Remember the file that could not be opened (a permission
		// problem, say) so that the poller waits for it to change.
		var id fileID
		if fi, serr := os.Stat(lc.Path); serr == nil {
			id = statID(fi)
		}
		return nil, id, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileID{}, err
	}
	id := statID(fi)
	ix, err := parse(f, lc.Path, lc, fi.Size())
	return ix, id, err
}

// parse reads a list in the format of lc; name is used in errors. size is
// the input size in bytes when known (0 otherwise), used to size the tables.
func parse(r io.Reader, name string, lc *ListConfig, size int64) (*index, error) {
	var (
		b   *builder
		err error
	)
	switch lc.format() {
	case FormatPlain:
		// The shortest line of a large sha256 list is 65 bytes.
		b = newBuilder(int(size / 65))
		err = parsePlain(newLineReader(r, name), b)
	case FormatMalwareBazaar:
		b = newBuilder(0)
		err = parseBazaar(newLineReader(r, name), b)
	case FormatThreatFox:
		b = newBuilder(0)
		err = parseThreatFox(newLineReader(r, name), b)
	case FormatCSV:
		b = newBuilder(0)
		err = parseCSV(r, name, lc, b)
	default:
		err = fmt.Errorf("%s: unknown format %q", name, lc.Format)
	}
	if err != nil {
		return nil, err
	}
	return b.build(), nil
}

// maxLine bounds the line length of the line-based formats.
const maxLine = 64 << 10

type lineReader struct {
	r    *bufio.Reader
	name string
	n    int
	eof  bool
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, maxLine), name: name}
}

// next returns the next line without its line end (LF or CRLF), io.EOF
// after the last one, or a LineError for a line over maxLine bytes. The
// slice is valid until the next call.
func (lr *lineReader) next() ([]byte, error) {
	if lr.eof {
		return nil, io.EOF
	}
	line, err := lr.r.ReadSlice('\n')
	switch {
	case err == io.EOF:
		lr.eof = true
		if len(line) == 0 {
			return nil, io.EOF
		}
	case errors.Is(err, bufio.ErrBufferFull):
		lr.n++
		return nil, lr.errorf("line longer than %d bytes", maxLine)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", lr.name, err)
	}
	lr.n++
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if lr.n == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	}
	return line, nil
}

func (lr *lineReader) errorf(format string, args ...any) error {
	return &LineError{File: lr.name, Line: lr.n, Reason: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimSpace(s []byte) []byte {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func parsePlain(lr *lineReader, b *builder) error {
	var d digest
	for {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line = trimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// sha256sum starts a line with a backslash when the file name
		// has a backslash or a newline, which it then escapes.
		escaped := line[0] == '\\'
		if escaped {
			line = line[1:]
		}
		end := 0
		for end < len(line) && !isSpace(line[end]) {
			end++
		}
		if !parseDigest(line[:end], &d) {
			return lr.errorf("not an md5, sha1, sha256 or sha512 hex digest: %.80q", line[:end])
		}
		b.add(&d, b.label(plainLabel(line[end:], escaped)))
	}
}

// plainLabel returns the label of a plain line from what follows the digest.
func plainLabel(rest []byte, escaped bool) []byte {
	if bytes.HasPrefix(rest, []byte(" *")) { // sha256sum binary mode
		rest = rest[2:]
	}
	rest = trimSpace(rest)
	if len(rest) > 0 && rest[0] == '#' {
		rest = trimSpace(rest[1:])
	}
	if escaped {
		rest = []byte(strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(string(rest)))
	}
	return rest
}

// splitQuoted splits a row of the abuse.ch exports, where every field is in
// double quotes and fields are separated by a comma and optional spaces.
// A quote-comma inside a field that is not followed by a quote does not
// split. It appends the fields to dst and reports false when the row is not
// quoted.
func splitQuoted(line []byte, dst [][]byte) ([][]byte, bool) {
	if len(line) < 2 || line[0] != '"' || line[len(line)-1] != '"' {
		return dst, false
	}
	s := line[1 : len(line)-1]
	start, pos := 0, 0
	for {
		j := bytes.Index(s[pos:], []byte(`",`))
		if j < 0 {
			return append(dst, s[start:]), true
		}
		j += pos
		k := j + 2
		for k < len(s) && s[k] == ' ' {
			k++
		}
		if k < len(s) && s[k] == '"' {
			dst = append(dst, s[start:j])
			start = k + 1
			pos = k + 1
		} else {
			pos = j + 2
		}
	}
}

func isNA(v []byte) bool {
	v = trimSpace(v)
	return len(v) == 0 || bytes.EqualFold(v, []byte("n/a"))
}

// MalwareBazaar CSV columns (formats.md E): first_seen_utc, sha256_hash,
// md5_hash, sha1_hash, reporter, file_name, file_type_guess, mime_type,
// signature, clamav, vtpercent, imphash, ssdeep, tlsh. file_name may hold
// the separator, so signature is counted from the end.
const (
	mbFields      = 14
	mbSHA256      = 1
	mbMD5         = 2
	mbSHA1        = 3
	mbSigFromEnd  = mbFields - 8
	tfMinFields   = 8
	tfValue       = 2
	tfType        = 3
	tfMalware     = 5
	tfMalwareName = 7
)

// quotedRows calls row for every data line of an abuse.ch export: comment
// and blank lines are skipped, every other line must be double-quoted
// fields, at least minFields of them. An error from row stops the file.
func quotedRows(lr *lineReader, minFields int, row func(f [][]byte) error) error {
	var f [][]byte
	for {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(trimSpace(line)) == 0 || line[0] == '#' {
			continue
		}
		var ok bool
		if f, ok = splitQuoted(trimSpace(line), f[:0]); !ok {
			return lr.errorf("not a row of double-quoted fields")
		}
		if len(f) < minFields {
			return lr.errorf("row has %d fields, want at least %d", len(f), minFields)
		}
		if err := row(f); err != nil {
			return err
		}
	}
}

func parseBazaar(lr *lineReader, b *builder) error {
	var d digest
	return quotedRows(lr, mbFields, func(f [][]byte) error {
		label := f[len(f)-mbSigFromEnd]
		if isNA(label) {
			label = nil
		}
		li := b.label(label)
		for _, c := range []struct {
			col, algo int
			need      bool
		}{{mbSHA256, algoSHA256, true}, {mbMD5, algoMD5, false}, {mbSHA1, algoSHA1, false}} {
			v := trimSpace(f[c.col])
			if !c.need && isNA(v) {
				continue
			}
			if !parseDigest(v, &d) || d.algo != c.algo {
				return lr.errorf("column %d: %.80q is not a %s digest", c.col+1, v, algoNames[c.algo])
			}
			b.add(&d, li)
		}
		return nil
	})
}

// ThreatFox CSV columns (formats.md E): first_seen_utc, ioc_id, ioc_value,
// ioc_type, threat_type, fk_malware, malware_alias, malware_printable, then
// columns that vary between dumps, which are not used.
func parseThreatFox(lr *lineReader, b *builder) error {
	var d digest
	return quotedRows(lr, tfMinFields, func(f [][]byte) error {
		var algo int
		switch string(f[tfType]) {
		case "sha256_hash":
			algo = algoSHA256
		case "md5_hash":
			algo = algoMD5
		case "sha1_hash":
			algo = algoSHA1
		default:
			return nil // ip:port, domain, url...
		}
		v := trimSpace(f[tfValue])
		if !parseDigest(v, &d) || d.algo != algo {
			return lr.errorf("ioc_value %.80q is not a %s digest", v, algoNames[algo])
		}
		label := f[tfMalwareName]
		if isNA(label) {
			label = f[tfMalware]
		}
		if isNA(label) {
			label = nil
		}
		b.add(&d, b.label(label))
		return nil
	})
}

func parseCSV(r io.Reader, name string, lc *ListConfig, b *builder) error {
	cr := csv.NewReader(r)
	cr.Comma = lc.delimiter()
	cr.Comment = lc.comment()
	cr.LazyQuotes = true
	// Skip the space after a delimiter (`a, "b"`), but not when the
	// delimiter is itself white space: csv would then merge empty fields.
	cr.TrimLeadingSpace = !unicode.IsSpace(cr.Comma)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	col, lcol := -1, -1
	if n, err := strconv.Atoi(lc.Column); err == nil {
		col = n - 1
	}
	if n, err := strconv.Atoi(lc.LabelColumn); err == nil {
		lcol = n - 1
	}
	header := lc.Header
	var d digest
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return &LineError{File: name, Line: pe.Line, Reason: pe.Err.Error()}
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if header {
			header = false
			if col < 0 {
				if col = findColumn(rec, lc.Column); col < 0 {
					return &LineError{File: name, Line: line, Reason: fmt.Sprintf("header has no column %q", lc.Column)}
				}
			}
			if lcol < 0 && lc.LabelColumn != "" {
				if lcol = findColumn(rec, lc.LabelColumn); lcol < 0 {
					return &LineError{File: name, Line: line, Reason: fmt.Sprintf("header has no column %q", lc.LabelColumn)}
				}
			}
			continue
		}
		if col >= len(rec) {
			return &LineError{File: name, Line: line, Reason: fmt.Sprintf("row has %d fields, the digest column is %d", len(rec), col+1)}
		}
		v := strings.TrimSpace(rec[col])
		if isNA([]byte(v)) {
			continue
		}
		if !parseDigest(v, &d) {
			return &LineError{File: name, Line: line, Reason: fmt.Sprintf("column %d: not an md5, sha1, sha256 or sha512 hex digest: %.80q", col+1, v)}
		}
		var label []byte
		if lcol >= 0 && lcol < len(rec) {
			label = []byte(strings.TrimSpace(rec[lcol]))
		}
		b.add(&d, b.label(label))
	}
}

func findColumn(header []string, name string) int {
	for i, h := range header {
		h = strings.TrimPrefix(h, "\ufeff")
		if strings.EqualFold(strings.TrimSpace(h), name) {
			return i
		}
	}
	return -1
}
