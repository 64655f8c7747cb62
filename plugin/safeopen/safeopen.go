// Package safeopen opens files that root opens in directories another
// account owns: the plugin starts as root and opens its pid file, its
// parse-error log, its disk buffers and its caches before it switches to
// its service user, in directories that user owns (since the last start)
// and may have filled with links, hard links or FIFOs in those files'
// places, to make root read or write another file.
package safeopen

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// OpenFile is os.OpenFile for a file in a directory another account may
// write. In such a directory it never follows a symbolic link as the last
// element of path (O_NOFOLLOW: the open fails with ELOOP), opens only a
// regular file with a single link (O_NONBLOCK makes the open of a FIFO
// without peer fail rather than block; another kind of file, or one with
// hard links elsewhere, is closed again with an error naming path), and
// truncates (O_TRUNC) only after those checks. A file in a directory only
// root can write (owned by root, not writable by group or others: /dev,
// /var/log) is opened as os.OpenFile opens it, links and devices included
// (parse_errors = "/dev/stderr"). The directories above path are not
// checked: they must be root's or the administrator's.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	if rootOnly(filepath.Dir(path)) {
		return os.OpenFile(path, flag, perm)
	}
	f, err := os.OpenFile(path, flag&^os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file with a single link", path)
	}
	if flag&os.O_TRUNC != 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// rootOnly reports whether only root can add or replace entries in dir.
func rootOnly(dir string) bool {
	var st syscall.Stat_t
	return syscall.Stat(dir, &st) == nil && st.Uid == 0 && st.Mode&0o022 == 0
}

// ReadFile is os.ReadFile through OpenFile.
func ReadFile(path string) ([]byte, error) {
	f, err := OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
