package buffer

// The crash hooks of the suite live here, out of the production code.

// crash simulates a process kill for tests: nothing more is written, the
// files and the lock are released. Data already written stays in the page
// cache, as it would after kill -9.
func (d *disk) crash() {
	d.mu.Lock()
	d.closed = true
	d.data.wake()
	d.space.wake()
	d.mu.Unlock()
	close(d.stop)
	d.loopWG.Wait()
	d.closeFiles()
}

// crash simulates a process kill (test hook shared with the disk buffer).
func (b *memory) crash() { _ = b.Close() }
