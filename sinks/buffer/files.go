package buffer

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// openFile opens a file of the buffer's directory as os.OpenFile does, but
// never through a symbolic link (O_NOFOLLOW: the open fails) and only a
// regular file (O_NONBLOCK, so that a FIFO without peer fails the open
// rather than blocking). The plugin opens its buffers as root before it
// switches to its service user, who owns the directory and may have
// planted a link or FIFO in a file's place to make root read or write
// another file.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
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

// readFile is os.ReadFile through openFile.
func readFile(path string) ([]byte, error) {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
