package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// prSetNoNewPrivs is PR_SET_NO_NEW_PRIVS from linux/prctl.h.
const prSetNoNewPrivs = 38

// DropPrivileges switches the whole process (every thread) to the service
// account name: it makes stateDir (and everything in it) belong to that
// account with no access for others, then calls setgroups, setgid and
// setuid. Leaving uid 0 clears every capability (CapEff, CapPrm become 0),
// and no_new_privs is set so that nothing executed later can regain them.
// With name "root" it only sets no_new_privs and stays root.
//
// The pipeline's goroutines already run while it walks stateDir (the
// package index may be saving packages.idx), so files may come and go
// during the walk: see ownStateDir.
//
// Call it after everything that needs root is open (stdin, listeners,
// buffers, key files) and before reading events.
func DropPrivileges(name, stateDir string, log *slog.Logger) error {
	if err := noNewPrivs(); err != nil {
		return err
	}
	uid, gid, err := serviceIDs(name)
	switch {
	case err != nil:
		return err
	case name == "root":
		log.Warn("running as root (user = \"root\"); a dedicated service user is recommended")
		return nil
	case uid < 0:
		log.Info("not root; keeping the current user", "uid", os.Geteuid())
		return nil
	}
	if stateDir != "" {
		if err := ownStateDir(stateDir, uid, gid); err != nil {
			return fmt.Errorf("state dir %s: %w", stateDir, err)
		}
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	log.Info("dropped privileges", "user", name, "uid", uid, "gid", gid)
	return nil
}

// serviceIDs returns the uid and gid DropPrivileges switches to, or -1, -1
// when the plugin keeps its user (user = "root", or not started as root).
func serviceIDs(name string) (uid, gid int, err error) {
	if name == "root" || os.Geteuid() != 0 {
		return -1, -1, nil
	}
	u, err := ServiceUser(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// ServiceUser looks up the account the plugin runs as (config key user);
// its error says how to fix a missing one. check-config uses it to warn
// before auditd starts a plugin that would stop here.
func ServiceUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("service user %q: %w (create it, or set user = \"root\")", name, err)
	}
	return u, nil
}

// noNewPrivs sets no_new_privs on every thread of the process. It needs a
// binary built with CGO_ENABLED=0 (as the Makefile and packages do).
func noNewPrivs() error {
	if _, _, e := syscall.AllThreadsSyscall6(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS) on all threads: %w (build with CGO_ENABLED=0)", e)
	}
	return nil
}

// ownStateDir gives stateDir and everything in it to uid:gid, with
// directories at mode 0750 (stateDir made if missing).
//
// stateDir is root's configuration and trusted: a symbolic link to the real
// directory is resolved first, and the directories above it must not be
// writable by the service user. The entries under it are not trusted: the
// service user owns them (since the last start) and may swap any of them for
// a symbolic link while the walk runs. So no entry is ever reached by path:
// each is opened through its parent directory's descriptor without following
// a link (openat O_PATH|O_NOFOLLOW), examined through its own descriptor and
// changed through it. A symbolic link is chowned itself and never followed,
// a directory is descended only when the entry opened is one, and a
// non-directory with more than one hard link is left alone (its other name
// may be outside stateDir). Nothing outside stateDir changes owner or mode,
// however the entries change during the walk.
//
// An entry removed or renamed while the walk runs (a temporary file of a
// store being replaced) is skipped: it needs no owner. A file created after
// the walk read its directory keeps root as owner until the next start
// (the package index's store takes its directory's owner itself); the
// service user can still replace it (the directory is its own).
func ownStateDir(stateDir string, uid, gid int) error {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return err
	}
	dir, err := filepath.EvalSymlinks(stateDir)
	if err != nil {
		return err
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	return ownDir(d, uid, gid, 0)
}

// maxStateDepth is how deep below the state directory the walk goes: the
// plugin's own layout is three levels deep (spool/<sink>/<file>); a deeper
// tree, which only the service user could have made, is left as it is
// rather than held open level by level.
const maxStateDepth = 8

// ownDir gives the open directory d (depth levels below the state
// directory) and everything in it down to maxStateDepth to uid:gid,
// directories at mode 0750, and closes d. Entries that vanish are skipped;
// ENOENT is returned only when d itself was removed before it was read.
func ownDir(d *os.File, uid, gid, depth int) error {
	defer d.Close()
	fd := int(d.Fd())
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return &fs.PathError{Op: "fchown", Path: d.Name(), Err: err}
	}
	if err := unix.Fchmod(fd, 0o750); err != nil {
		return &fs.PathError{Op: "fchmod", Path: d.Name(), Err: err}
	}
	if depth == maxStateDepth {
		return nil
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ownEntry(fd, d.Name(), name, uid, gid, depth+1); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// ownEntry gives the entry name of the directory open as dirfd (whose path,
// for errors, is dir; depth levels below the state directory) to uid:gid,
// descending into it when it is a directory.
// It never follows a symbolic link and leaves a non-directory with more than
// one hard link alone.
func ownEntry(dirfd int, dir, name string, uid, gid, depth int) error {
	path := filepath.Join(dir, name)
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "openat", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		// Reopen the very directory examined, readable, to descend.
		sub, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return &fs.PathError{Op: "openat", Path: path, Err: err}
		}
		return ownDir(os.NewFile(uintptr(sub), path), uid, gid, depth)
	}
	defer unix.Close(fd)
	if st.Nlink > 1 {
		return nil
	}
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return &fs.PathError{Op: "fchownat", Path: path, Err: err}
	}
	return nil
}
