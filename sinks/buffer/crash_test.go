package buffer

// The crash hook of the suite lives here, out of the production code.

// crash simulates a process kill for tests: nothing more is written (no
// final sync, no marker, no shutdown accounting), the files and the lock
// are released. Data already written stays in the page cache, as it would
// after kill -9. A memory buffer just closes.
func crash(b Buffer) {
	d, ok := b.(*disk)
	if !ok {
		_ = b.Close()
		return
	}
	d.mu.Lock()
	d.closed = true
	d.data.wake()
	d.space.wake()
	d.mu.Unlock()
	close(d.stop)
	d.loopWG.Wait()
	d.closeFiles()
	d.faults.close()
}
