package plugin

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
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
