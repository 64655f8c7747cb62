package plugin

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOwnStateDirWhileFilesComeAndGo gives a state directory to another
// owner while a goroutine replaces a store in it the way packages.idx is
// saved (a temporary file written, then renamed over the store), as the
// package index may do while the plugin drops its privileges. Temporary
// files vanish between the walk's listing and its chown; none of that may
// fail the walk (a CI run's plugin stopped with "lchown
// .../packages.idx.tmp282855338: no such file or directory"), and what is
// left afterwards belongs to the new owner.
func TestOwnStateDirWhileFilesComeAndGo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "packages.idx")
	stop := make(chan struct{})
	var replaced atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, d := range []string{dir, filepath.Join(dir, "sub")} {
				f, err := os.CreateTemp(d, "packages.idx.tmp*")
				if err != nil {
					t.Error(err)
					return
				}
				f.Close()
				if err := os.Rename(f.Name(), filepath.Join(d, "packages.idx")); err != nil {
					t.Error(err)
					return
				}
			}
			replaced.Add(1)
		}
	}()
	const nobody = 65534
	// Walk until the store has been replaced 300 times, however the two
	// goroutines are scheduled.
	for i := 0; replaced.Load() < 300; i++ {
		select {
		case <-writerDone:
			t.Fatal("the writer stopped")
		default:
		}
		if err := ownStateDir(dir, nobody, nobody); err != nil {
			close(stop)
			<-writerDone
			t.Fatalf("walk %d: %v", i, err)
		}
	}
	close(stop)
	<-writerDone
	if err := ownStateDir(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "sub"), store, filepath.Join(dir, "sub", "packages.idx")} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != nobody || st.Gid != nobody {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, nobody, nobody)
		}
		if fi.IsDir() && fi.Mode().Perm() != 0o750 {
			t.Errorf("%s: mode %v, want 0750", p, fi.Mode().Perm())
		}
	}
}

// TestOwnStateDirSwappedForSymlink plays a hostile service user: while the
// walk runs, again and again, it swaps the state directory's subdirectory
// sub for a symbolic link to a directory outside (standing for /etc, with a
// root-owned file named like the one in sub, standing for /etc/shadow). A
// walk by path (lchown, chmod) is redirected by such a swap between listing
// sub and changing sub/victim; the walk by descriptors must never change the
// owner or mode of anything outside the state directory.
func TestOwnStateDirSwappedForSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	top := t.TempDir()
	outside := filepath.Join(top, "etc")
	victim := filepath.Join(outside, "victim")
	dir := filepath.Join(top, "state")
	sub := filepath.Join(dir, "sub")
	swap := filepath.Join(dir, "sub.swap")
	for _, d := range []string{outside, sub} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{victim, filepath.Join(sub, "victim")} {
		if err := os.WriteFile(f, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, swap); err != nil {
		t.Fatal(err)
	}
	exchange := func() error {
		return unix.Renameat2(unix.AT_FDCWD, swap, unix.AT_FDCWD, sub, unix.RENAME_EXCHANGE)
	}
	if err := exchange(); err != nil {
		t.Skipf("renameat2 RENAME_EXCHANGE: %v", err)
	}
	stop := make(chan struct{})
	var swaps atomic.Int64
	attackerDone := make(chan struct{})
	go func() {
		defer close(attackerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := exchange(); err != nil {
				t.Error(err)
				return
			}
			swaps.Add(1)
		}
	}()
	defer func() {
		close(stop)
		<-attackerDone
	}()
	const nobody = 65534
	// Enough walks and swaps that a walk by path is redirected (it was
	// within the first few hundred walks in every run on a 2-CPU machine).
	for i := 0; i < 3000 || swaps.Load() < 3000; i++ {
		select {
		case <-attackerDone:
			t.Fatal("the attacker stopped")
		default:
		}
		if err := ownStateDir(dir, nobody, nobody); err != nil {
			t.Fatalf("walk %d: %v", i, err)
		}
		for p, mode := range map[string]os.FileMode{outside: 0o755, victim: 0o600} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != 0 || st.Gid != 0 || fi.Mode().Perm() != mode {
				t.Fatalf("walk %d (%d swaps): %s outside the state dir became %d:%d mode %v, want 0:0 mode %v",
					i, swaps.Load(), p, st.Uid, st.Gid, fi.Mode().Perm(), mode)
			}
		}
	}
}

// TestOwnStateDirThroughSymlink configures the state directory as a symbolic
// link (state_dir = /var/lib/audisp-enrich pointing to another disk): the
// directory it points to and everything in it are taken over, not only the
// link.
func TestOwnStateDirThroughSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	top := t.TempDir()
	target := filepath.Join(top, "disk", "state")
	sub := filepath.Join(target, "spool")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(sub, "buffer")
	if err := os.WriteFile(store, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(top, "state")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := ownStateDir(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{target, sub, store} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != nobody || st.Gid != nobody {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, nobody, nobody)
		}
		if fi.IsDir() && fi.Mode().Perm() != 0o750 {
			t.Errorf("%s: mode %v, want 0750", p, fi.Mode().Perm())
		}
	}
}

// TestOwnStateDirLeavesLinkedFilesOutside puts a symbolic link and a hard
// link to a root-owned file outside into the state directory: the symbolic
// link itself is taken over, the file outside is not, through either link.
func TestOwnStateDirLeavesLinkedFilesOutside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	top := t.TempDir()
	victim := filepath.Join(top, "shadow")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(top, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	symlink, hardlink := filepath.Join(dir, "sym"), filepath.Join(dir, "hard")
	if err := os.Symlink(victim, symlink); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(victim, hardlink); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := ownStateDir(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]uint32{victim: 0, symlink: nobody} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != want || st.Gid != want {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, want, want)
		}
	}
	if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", victim, fi, err)
	}
}

// TestOwnStateDirDepthBound: the walk takes directories down to
// maxStateDepth levels below the state directory and leaves a deeper
// tree (only the service user could have made one) as it is, without
// failing.
func TestOwnStateDirDepthBound(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const nobody = 65534
	dir := filepath.Join(t.TempDir(), "state")
	deep := dir
	var levels []string
	for range maxStateDepth + 4 {
		deep = filepath.Join(deep, "d")
		levels = append(levels, deep)
	}
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ownStateDir(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for i, p := range levels {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		owned := fi.Sys().(*syscall.Stat_t).Uid == nobody
		if want := i+1 <= maxStateDepth; owned != want {
			t.Errorf("level %d: taken over %v, want %v", i+1, owned, want)
		}
	}
}
