package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// smallFS mounts a 256 KiB tmpfs on a temporary directory (unmounted at
// the end of the test) and returns the directory; it skips the test when
// it cannot (not root, no mount permission).
func smallFS(t *testing.T) string {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full, and returns it.
func fill(t *testing.T, dir string) string {
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return name
		}
	}
}

// TestVerdictCacheFileFull: on a full file system, verdicts that need a
// record are not cached and are counted, the others still are, nothing
// blocks; once space is back records are written again. On a read-only
// file system (no file can be made) the same holds.
func TestVerdictCacheFileFull(t *testing.T) {
	dir := smallFS(t)
	now := time.Now()
	unstored := &metrics.Counter{}
	c := newVerdictCache(1000, dir, quietLog(), unstored)
	defer c.close()
	hitKey, hit := fleetVerdict(0, 100, 0, now.Unix())
	plainKey, plain := fleetVerdict(99, 0, 0, now.Unix())

	filler := fill(t, dir)
	c.put(hitKey, &hit, false, now)
	c.put(plainKey, &plain, false, now)
	if _, ok := c.get(hitKey, now); ok || unstored.Value() != 1 || !c.file.failing {
		t.Fatalf("full: hit cached %v, %d unstored (want false, 1), failing %v", ok, unstored.Value(), c.file.failing)
	}
	if got, ok := c.get(plainKey, now); !ok || !reflect.DeepEqual(got, result(plainKey, &plain)) {
		t.Fatalf("full: plain verdict %+v (%v)", got, ok)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.put(hitKey, &hit, false, now)
	if got, ok := c.get(hitKey, now); !ok || !reflect.DeepEqual(got, result(hitKey, &hit)) || c.file.failing {
		t.Fatalf("space back: hit %+v (%v), failing %v", got, ok, c.file.failing)
	}

	// Read-only, with no file yet: none can be made; retried a minute later.
	c.close() // a file open for writing keeps the mount from going read-only
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	ro := newVerdictCache(1000, dir, quietLog(), unstored)
	defer ro.close()
	ro.put(hitKey, &hit, false, now)
	ro.put(plainKey, &plain, false, now)
	if _, ok := ro.get(hitKey, now); ok || unstored.Value() != 2 || ro.len() != 1 {
		t.Fatalf("read-only: hit cached %v, %d unstored (want false, 2), %d cached", ok, unstored.Value(), ro.len())
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, ""); err != nil {
		t.Fatal(err)
	}
	ro.put(hitKey, &hit, false, now.Add(30*time.Second))
	if _, ok := ro.get(hitKey, now); ok || unstored.Value() != 3 {
		t.Fatalf("within the minute: hit cached %v, %d unstored (want false, 3)", ok, unstored.Value())
	}
	ro.put(hitKey, &hit, false, now.Add(61*time.Second))
	if got, ok := ro.get(hitKey, now); !ok || !reflect.DeepEqual(got, result(hitKey, &hit)) {
		t.Fatalf("a minute later: hit %+v (%v)", got, ok)
	}
}
