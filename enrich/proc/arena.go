package proc

import (
	"encoding/binary"
	"slices"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Limits on what one image keeps, so that a table of MaxEntries entries
// stays small whatever the command lines are: at most maxArgs arguments
// and maxArgsBytes bytes of them, an executable path of at most
// maxExeBytes (the kernel's PATH_MAX, so no real path is cut) and uid and
// auid of at most maxIDBytes (they are numeric: 10 digits at most).
const (
	maxArgs      = 64
	maxArgsBytes = 4096
	maxExeBytes  = 4096
	maxIDBytes   = 64
)

// The arena's geometry: images are stored in blocks of blockSize bytes,
// carved from chunks of chunkBlocks blocks (16 KiB).
const (
	blockSize   = 256
	chunkBlocks = 64
	// headSize is the first block's header (see arena); payload follows.
	headSize = 24
	// commFlag, in the source byte of the header, marks an image whose exe
	// slot holds its Comm (see arena).
	commFlag = 0x80
)

// arena holds the images of one shard in memory that has no pointers, so
// the garbage collector does not scan it: fixed-size blocks in chunks,
// numbered from 1 (0 means none). An image is a chain of blocks: the first
// holds a header and the start of the payload, each further block more
// payload. The payload is the arguments' lengths (2 bytes each), then exe,
// uid, auid and the arguments' bytes. A freed block goes to a free list
// and is reused by the next image, so a table that has reached its size
// stops allocating: the arena keeps its high-water mark, about the peak
// bytes of the images held.
//
// The chains and the free list are linked through links, beside the
// blocks (4 bytes per block), not through the blocks themselves: freeing
// an evicted image, whose blocks have long left the CPU's caches, then
// reads and writes no block, and the blocks are touched again only when
// the next image is written into them.
//
// Header of an image's first block (little endian):
//
//	0  ppid (int32)            12 serial (uint32)
//	4  start, unix ms (int64)  16 payload size (uint16)
//	18 exe length (uint16)
//	20 uid length, 21 auid length, 22 argument count, 23 source (bytes)
//
// The source byte's top bit (commFlag) says that the exe of the payload is
// the image's Comm: an image without Exe keeps its Comm there.
//
// Nothing outside the table points into the arena: lookups copy what they
// hand out (see view), so a block's reuse never changes a string that an
// event holds. Not safe for concurrent use (the shard's lock guards it).
type arena struct {
	chunks []*[chunkBlocks][blockSize]byte
	// cgs are the cgroup facts of the images whose first block is in the
	// chunk of the same index, made when the first one is set: the
	// arena's only pointers, to values shared by many images.
	cgs []*[chunkBlocks]*audit.Cgroup
	// links holds, for each block, the next block of its image's chain,
	// or, for a free block, the next free one (0: none).
	links   []uint32
	free    uint32 // first free block; 0 none
	next    uint32 // the block after the highest handed out
	serial  uint32 // the serial of the last image stored
	scratch []byte // a chained image's payload, gathered (see payload)
}

var le = binary.LittleEndian

func (a *arena) block(b uint32) []byte { return a.chunks[b/chunkBlocks][b%chunkBlocks][:] }

// alloc returns a free block, its link cleared. It does not touch the
// block.
func (a *arena) alloc() uint32 {
	b := a.free
	if b != 0 {
		a.free = a.links[b]
	} else {
		if a.next == 0 {
			a.next = 1
		}
		b = a.next
		a.next++
		if int(b/chunkBlocks) == len(a.chunks) {
			a.chunks = append(a.chunks, new([chunkBlocks][blockSize]byte))
			a.cgs = append(a.cgs, nil)
			// Doubled as the chunks grow (append's quarter steps would
			// copy it more often); the new links are zero.
			a.links = slices.Grow(a.links, max(len(a.links), chunkBlocks))[:len(a.links)+chunkBlocks]
		}
	}
	a.links[b] = 0
	return b
}

// image is what the table stores of a program image, before its strings
// are bounded and copied into the arena.
type image struct {
	Image
	cg *audit.Cgroup
}

// bounded returns im's exe (its Comm when it has no Exe) and ids cut to
// their limits and its argv cut
// to maxArgs arguments and maxArgsBytes bytes: the argument that crosses
// the byte limit is cut, and the argv ends before the next non-empty one.
// It puts the kept length of each argument in lens (2 bytes each) and
// returns their sum.
func (im *image) bounded(lens *[2 * maxArgs]byte) (exe, uid, auid string, args []string, argBytes int) {
	exe = im.Exe
	if exe == "" {
		exe = im.Comm
	}
	exe, uid, auid = cutExe(exe), im.UID[:min(len(im.UID), maxIDBytes)], im.AUID[:min(len(im.AUID), maxIDBytes)]
	args = im.Args[:min(len(im.Args), maxArgs)]
	for i, a := range args {
		room := maxArgsBytes - argBytes
		if room <= 0 && len(a) > 0 {
			return exe, uid, auid, args[:i], argBytes
		}
		n := min(len(a), room)
		le.PutUint16(lens[2*i:], uint16(n))
		argBytes += n
	}
	return exe, uid, auid, args, argBytes
}

// writer appends payload to a chain of blocks, adding blocks as it fills
// them.
type writer struct {
	a   *arena
	cur uint32 // the current block
	buf []byte // its bytes
	pos int
}

// write appends p (a string or a byte slice) to the chain w writes.
func write[T string | []byte](w *writer, p T) {
	for len(p) > 0 {
		if w.pos == blockSize {
			b := w.a.alloc()
			w.a.links[w.cur] = b
			w.cur, w.buf, w.pos = b, w.a.block(b), 0
		}
		n := copy(w.buf[w.pos:], p)
		w.pos += n
		p = p[n:]
	}
}

// put copies im, bounded, into new blocks and returns the first.
func (a *arena) put(im *image) uint32 {
	var lens [2 * maxArgs]byte
	exe, uid, auid, args, argBytes := im.bounded(&lens)
	b := a.alloc()
	h := a.block(b)
	a.serial++
	ppid := im.PPID
	if !validPid(ppid) {
		ppid = 0 // a malformed record's: no parent rather than a wrapped pid
	}
	le.PutUint32(h[0:], uint32(ppid))
	le.PutUint64(h[4:], uint64(im.StartMilli))
	le.PutUint32(h[12:], a.serial)
	le.PutUint16(h[16:], uint16(2*len(args)+len(exe)+len(uid)+len(auid)+argBytes))
	le.PutUint16(h[18:], uint16(len(exe)))
	src := byte(im.Source)
	if im.Exe == "" && im.Comm != "" {
		src |= commFlag
	}
	h[20], h[21], h[22], h[23] = byte(len(uid)), byte(len(auid)), byte(len(args)), src
	w := writer{a: a, cur: b, buf: h, pos: headSize}
	write(&w, lens[:2*len(args)])
	write(&w, exe)
	write(&w, uid)
	write(&w, auid)
	for i, s := range args {
		write(&w, s[:le.Uint16(lens[2*i:])])
	}
	if im.cg != nil {
		c := &a.cgs[b/chunkBlocks]
		if *c == nil {
			*c = new([chunkBlocks]*audit.Cgroup)
		}
		(*c)[b%chunkBlocks] = im.cg
	}
	return b
}

// release frees the blocks of the image that starts at b, through the
// links only (see arena).
func (a *arena) release(b uint32) {
	if c := a.cgs[b/chunkBlocks]; c != nil {
		c[b%chunkBlocks] = nil
	}
	for b != 0 {
		next := a.links[b]
		a.links[b] = a.free
		a.free = b
		b = next
	}
}

// Header fields of the image that starts at b.
func (a *arena) ppid(b uint32) int        { return int(int32(le.Uint32(a.block(b)[0:]))) }
func (a *arena) start(b uint32) int64     { return int64(le.Uint64(a.block(b)[4:])) }
func (a *arena) serialOf(b uint32) uint32 { return le.Uint32(a.block(b)[12:]) }
func (a *arena) source(b uint32) Source   { return Source(a.block(b)[23] &^ commFlag) }

// named reports whether the exe of the image at b is its Comm (commFlag).
func (a *arena) named(b uint32) bool { return a.block(b)[23]&commFlag != 0 }

func (a *arena) cg(b uint32) *audit.Cgroup {
	if c := a.cgs[b/chunkBlocks]; c != nil {
		return c[b%chunkBlocks]
	}
	return nil
}

// fields is an image's payload, split: valid until the arena changes.
type fields struct {
	lens           []byte // 2 bytes per argument
	exe, uid, auid []byte
	args           []byte // the arguments' bytes, back to back
}

// payload returns the payload of the image at b: in the block itself when
// it fits there, else gathered into the arena's scratch buffer.
func (a *arena) payload(b uint32) fields {
	h := a.block(b)
	size := int(le.Uint16(h[16:]))
	var p []byte
	if headSize+size <= blockSize {
		p = h[headSize : headSize+size]
	} else {
		p = append(a.scratch[:0], h[headSize:]...)
		for next := a.links[b]; next != 0; next = a.links[next] {
			p = append(p, a.block(next)[:min(blockSize, size-len(p))]...)
		}
		a.scratch = p
	}
	n, exe, uid, auid := 2*int(h[22]), int(le.Uint16(h[18:])), int(h[20]), int(h[21])
	return fields{lens: p[:n], exe: p[n : n+exe], uid: p[n+exe : n+exe+uid], auid: p[n+exe+uid : n+exe+uid+auid], args: p[n+exe+uid+auid:]}
}

// cutExe is exe as an image keeps it (at most maxExeBytes).
func cutExe(exe string) string { return exe[:min(len(exe), maxExeBytes)] }

// exeIs reports whether the image at b runs exe (as cutExe keeps it),
// reading the exe in place when the first block holds it, so that the
// check costs no copy of a chained image's payload. An image that knows
// only its Comm runs no known exe.
func (a *arena) exeIs(b uint32, exe string) bool {
	exe = cutExe(exe)
	h := a.block(b)
	if h[23]&commFlag != 0 {
		return false
	}
	if off, n := headSize+2*int(h[22]), int(le.Uint16(h[18:])); off+n <= blockSize {
		return string(h[off:off+n]) == exe
	}
	return string(a.payload(b).exe) == exe
}

// strings returns copies of an image's strings, made from one allocation;
// args uses room when it is big enough, and is nil without arguments.
func (f fields) strings(room []string) (exe, uid, auid string, args []string) {
	text := string(f.exe) + string(f.uid) + string(f.auid) + string(f.args)
	exe, text = text[:len(f.exe)], text[len(f.exe):]
	uid, text = text[:len(f.uid)], text[len(f.uid):]
	auid, text = text[:len(f.auid)], text[len(f.auid):]
	nargs := len(f.lens) / 2
	if nargs == 0 {
		return exe, uid, auid, nil
	}
	args = room[:0]
	if cap(room) < nargs {
		args = make([]string, 0, nargs)
	}
	for i := range nargs {
		n := int(le.Uint16(f.lens[2*i:]))
		args, text = append(args, text[:n]), text[n:]
	}
	return exe, uid, auid, args
}
