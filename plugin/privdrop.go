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
	if name == "root" {
		log.Warn("running as root (user = \"root\"); a dedicated service user is recommended")
		return nil
	}
	if os.Geteuid() != 0 {
		log.Info("not root; keeping the current user", "uid", os.Geteuid())
		return nil
	}
	u, err := ServiceUser(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
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
// directories at mode 0750 (made if missing). An entry removed or renamed
// while the walk runs (a temporary file of a store being replaced) is
// skipped: it needs no owner. A file created after the walk read its
// directory keeps root as owner until the next start; the service user can
// still replace it (the directory is its own), and a store it cannot read is
// rebuilt, as a missing one is.
func ownStateDir(stateDir string, uid, gid int) error {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return err
	}
	return filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, gid)
		}
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o750)
		}
		if errors.Is(err, fs.ErrNotExist) && p != stateDir {
			return nil
		}
		return err
	})
}
