// Package safeopen opens files that root opens in directories another
// account owns: the plugin starts as root and opens its pid file, its
// parse-error log, its disk buffers and its VirusTotal cache before it
// switches to its service user, in directories that user owns (since the
// last start) and may have filled with links or FIFOs in those files'
// places, to make root read or write another file.
package safeopen

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// OpenFile is os.OpenFile that never follows a symbolic link as the last
// element of path (O_NOFOLLOW: the open fails with ELOOP) and opens only a
// regular file: O_NONBLOCK makes the open of a FIFO without peer fail
// rather than block, and any other kind of file is closed again with an
// error naming path. It does not protect the directories of path: those
// must be root's or the administrator's.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return f, nil
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
