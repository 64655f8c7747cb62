package buffer

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkBboltSpool is the measurement behind choosing a segment log over
// bbolt (docs/buffers.md): 1 KiB values keyed by big-endian seq, put and
// then deleted in transactions of 1024, one commit (two fdatasyncs) each.
// Compare with BenchmarkDiskThroughput.
func BenchmarkBboltSpool(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "spool.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	name := []byte("q")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
		b.Fatal(err)
	}
	val := bytes.Repeat([]byte("x"), 1024)
	const group = 1024
	b.SetBytes(1024)
	b.ResetTimer()
	var k [8]byte
	for i := 0; i < b.N; i += group {
		n := min(group, b.N-i)
		for _, del := range []bool{false, true} {
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(name)
				for j := i; j < i+n; j++ {
					binary.BigEndian.PutUint64(k[:], uint64(j))
					var err error
					if del {
						err = bk.Delete(k[:])
					} else {
						err = bk.Put(k[:], val)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
