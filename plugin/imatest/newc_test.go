package imatest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Mode bits of the cpio newc format (the same values as in <sys/stat.h>).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
)

// fsEntry is one file, directory or symlink of an initramfs.
type fsEntry struct {
	mode     uint32 // permission bits; the type comes from the fields below
	uid, gid uint32
	dir      bool
	link     string // symlink target when non-empty
	data     []byte // file content
}

// fsTree is an initramfs under construction, keyed by path without the leading slash.
type fsTree map[string]*fsEntry

// file adds a regular file, creating its parent directories.
func (t fsTree) file(p string, mode uint32, data []byte) *fsEntry {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	t.mkdirAll(path.Dir(p))
	e := &fsEntry{mode: mode, data: data}
	t[p] = e
	return e
}

// symlink adds a symbolic link p pointing at target.
func (t fsTree) symlink(p, target string) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	t.mkdirAll(path.Dir(p))
	t[p] = &fsEntry{mode: 0o777, link: target}
}

// mkdirAll adds p and its parents as 0755 root directories unless present.
func (t fsTree) mkdirAll(p string) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for p != "" && p != "." {
		if _, ok := t[p]; !ok {
			t[p] = &fsEntry{mode: 0o755, dir: true}
		}
		p = path.Dir(p)
	}
}

// copyFile adds the host file src at p with mode, following symlinks.
func (t fsTree) copyFile(p, src string, mode uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	t.file(p, mode, b)
	return nil
}

// writeNewc writes t as a cpio archive in the "newc" (070701) format that
// the kernel's initramfs unpacker reads. Parents precede their children
// because paths are emitted in lexical order.
func (t fsTree) writeNewc(w io.Writer) error {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, n := range names {
		e := t[n]
		var mode, nlink uint32
		var body []byte
		switch {
		case e.dir:
			mode, nlink = modeDir|e.mode, 2
		case e.link != "":
			mode, nlink, body = modeSymlink|e.mode, 1, []byte(e.link)
		default:
			mode, nlink, body = modeRegular|e.mode, 1, e.data
		}
		if err := newcRecord(w, n, ino, mode, e.uid, e.gid, nlink, body); err != nil {
			return err
		}
		ino++
	}
	return newcRecord(w, "TRAILER!!!", 0, 0, 0, 0, 1, nil)
}

// newcRecord writes one header, name and body, each padded to 4 bytes.
func newcRecord(w io.Writer, name string, ino, mode, uid, gid, nlink uint32, body []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, uid, gid, nlink, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	b.WriteString(name)
	b.WriteByte(0)
	pad4(&b)
	b.Write(body)
	pad4(&b)
	_, err := w.Write(b.Bytes())
	return err
}

func pad4(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

// writeInitramfs writes t as a gzip-compressed newc archive to file.
func (t fsTree) writeInitramfs(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	if err := t.writeNewc(zw); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
