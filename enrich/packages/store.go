package packages

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
)

// StoreFile is the name of the persisted hashes inside Config.StateDir
// for the whole of root "/"; see StorePath.
const StoreFile = "packages.idx"

// StorePath is the file of cfg's persisted hashes: StoreFile in StateDir
// for root "/" without paths, else packages-<16 hex digits>.idx, named
// after a hash of the root and paths, so that processes indexing other
// roots or paths with one state directory (the plugin and a verdict
// service on a golden image) keep a file each instead of replacing each
// other's.
func StorePath(cfg Config) string {
	if cfg.Root == "/" && len(cfg.Paths) == 0 {
		return filepath.Join(cfg.StateDir, StoreFile)
	}
	h := sha256.Sum256([]byte(strings.Join(append([]string{cfg.Root}, cfg.Paths...), "\x00")))
	return filepath.Join(cfg.StateDir, fmt.Sprintf("packages-%x.idx", h[:8]))
}

const storeHeader = "# audisp-enrich package hashes v1: path size mtime_ns inode md5 sha1 sha256"

// fileKey identifies one state of a file: when all four are equal the
// content is taken to be the one hashed before.
type fileKey struct {
	Size, MtimeNs int64
	Ino           uint64
}

// hashed is a file's own digests, taken when it had Key.
type hashed struct {
	Key    fileKey
	MD5    [16]byte
	SHA1   [20]byte
	SHA256 [32]byte
}

// parseStore reads the persisted hashes: the header line, then one line
// per file: the Go-quoted path and the fields of hashed, separated by
// single spaces, digests in lower-case hex. Bad lines are reported as
// *LineError (at most maxLineErrors; bad counts them all) and skipped: the
// file is rehashed.
func parseStore(name string, r io.Reader) (m map[string]hashed, errs []error, bad int, err error) {
	m = make(map[string]hashed)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Text()
		if line == 1 {
			if b != storeHeader {
				return m, []error{&LineError{File: name, Line: 1, Err: errors.New("not a package hash file (unknown header)")}}, 1, nil
			}
			continue
		}
		p, h, e := parseStoreLine(b)
		if e != nil {
			bad++
			if len(errs) < maxLineErrors {
				errs = append(errs, &LineError{File: name, Line: line, Err: e})
			}
			continue
		}
		m[p] = h
	}
	if err := sc.Err(); err != nil {
		return m, errs, bad, fmt.Errorf("%s: %w", name, err)
	}
	return m, errs, bad, nil
}

func parseStoreLine(s string) (string, hashed, error) {
	var h hashed
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", h, errors.New("path is not a quoted string")
	}
	p, _ := strconv.Unquote(q)
	if len(p) == 0 || p[0] != '/' {
		return "", h, fmt.Errorf("path %.60q is not absolute", p)
	}
	f := bytes.Fields([]byte(s[len(q):]))
	if len(f) != 6 {
		return "", h, fmt.Errorf("want 6 fields after the path, have %d", len(f))
	}
	var nums [3]int64
	for i := range nums {
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil || n < 0 {
			return "", h, fmt.Errorf("field %d: %q is not a number", i+2, f[i])
		}
		nums[i] = n
	}
	h.Key = fileKey{Size: nums[0], MtimeNs: nums[1], Ino: uint64(nums[2])}
	for i, d := range [][]byte{h.MD5[:], h.SHA1[:], h.SHA256[:]} {
		if len(f[3+i]) != 2*len(d) {
			return "", h, fmt.Errorf("field %d: want %d hex digits", i+5, 2*len(d))
		}
		if _, err := hex.Decode(d, f[3+i]); err != nil {
			return "", h, fmt.Errorf("field %d: %w", i+5, err)
		}
	}
	return p, h, nil
}

func appendStoreLine(b []byte, p string, h *hashed) []byte {
	b = strconv.AppendQuote(b, p)
	for _, n := range []int64{h.Key.Size, h.Key.MtimeNs, int64(h.Key.Ino)} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, n, 10)
	}
	for _, d := range [][]byte{h.MD5[:], h.SHA1[:], h.SHA256[:]} {
		b = append(b, ' ')
		b = hex.AppendEncode(b, d)
	}
	return append(b, '\n')
}

// loadStore reads the file name; a missing file is an empty store.
func loadStore(name string) (map[string]hashed, []error, int, error) {
	f, err := safeopen.OpenFile(name, os.O_RDONLY, 0) // root may read it before the switch (a FIFO never blocks)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]hashed{}, nil, 0, nil
	}
	if err != nil {
		return map[string]hashed{}, nil, 0, err
	}
	defer f.Close()
	return parseStore(name, f)
}

// saveStore replaces the file name with m (written to a temporary file,
// synced and renamed, so a crash leaves the old or the new file). Written
// by root, the file gets its directory's owner (see ownLikeDir).
func saveStore(name string, m map[string]hashed) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := ownLikeDir(tmp, dir); err != nil {
		tmp.Close()
		return err
	}
	w := bufio.NewWriterSize(tmp, 64<<10)
	w.WriteString(storeHeader + "\n")
	var b []byte
	for p, h := range m {
		b = appendStoreLine(b[:0], p, &h)
		w.Write(b)
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// ownLikeDir gives f its directory's owner when this process is root. The
// plugin's package index starts before the plugin switches to its service
// user and may save the store meanwhile, after the switch's walk of the
// state directory has passed: without this the store would stay root's
// 0600 file, which the service user could not read at its next refresh
// (all hashes lost, every file hashed again).
func ownLikeDir(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 && st.Gid == 0 {
		return nil
	}
	// Fails (EPERM) when the plugin switched to its service user since the
	// check: that save fails (logged), the file keeps its earlier content,
	// and the next save (every 30 s while hashing, or the next refresh's)
	// is the service user's own.
	return f.Chown(int(st.Uid), int(st.Gid))
}
