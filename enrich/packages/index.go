package packages

import (
	"encoding/binary"
	"hash/maphash"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Status values of audit.PackageResult.
const (
	// StatusPackage: the hash is the package's digest for this path.
	StatusPackage = "package"
	// StatusModified: a package owns the path but the hash is not its
	// digest (or the file on disk already failed the database's digest).
	StatusModified = "modified"
	// StatusRelocated: the hash is a package's digest for another path.
	StatusRelocated = "relocated"
	// StatusUnowned: no package owns the path or has this content.
	StatusUnowned = "unowned"
	// StatusUnindexed: the index cannot tell yet (the path or the whole
	// index is still being hashed, or the package database is changing).
	StatusUnindexed = "unindexed"
)

// digestAlgo is the algorithm of a package database's file digests.
type digestAlgo uint8

const (
	digestMD5 digestAlgo = iota
	digestSHA256
)

// pkgInfo is one installed package. Changing is set while the package
// manager replaces its files (dpkg state half-installed: the files on disk
// may already be the new version's while the database still lists the old
// digests).
type pkgInfo struct {
	Name, Version string
	Changing      bool
}

// ownedFile is one file a package database lists, with the database's
// digest of it (MD5 in the first 16 bytes, or SHA-256, by Algo).
type ownedFile struct {
	Path   string
	Pkg    int32
	Algo   digestAlgo
	Digest [32]byte
}

// database is what a package manager's database says: packages and the
// files they own.
type database struct {
	manager  string // dpkg | rpm
	pkgs     []pkgInfo
	files    []ownedFile
	badLines int
}

// fileRec is one indexed file in the live index: 8 bytes. Its digests
// are in the snapshot's digest tables.
type fileRec struct {
	pkg  uint32 // package index | flag bits
	name uint32 // offset of the path in snapshot.names
}

// fileRec.pkg flag bits.
const (
	flagPending  = 1 << 31 // not hashed yet
	flagModified = 1 << 30 // the file on disk fails the database digest
	flagChanging = 1 << 29 // fails it while its package is being replaced: unindexed
	pkgMask      = 1<<29 - 1
)

// keyIndex is a sorted set of 64-bit keys (hashes, so spread evenly) with a
// table of where each run of leading bits starts: a lookup reads one start
// and scans about four keys. It costs 8 bytes per key plus 1 to 2 for the
// table.
type keyIndex struct {
	keys   []uint64
	starts []uint32 // starts[b]: first key whose top bits are >= b; one extra at the end
	shift  uint     // 64 - number of table bits
}

func newKeyIndex(sorted []uint64) keyIndex {
	bits := uint(1)
	for 1<<bits < len(sorted)/4 {
		bits++
	}
	x := keyIndex{keys: sorted, shift: 64 - bits, starts: make([]uint32, 1<<bits+1)}
	j := 0
	for b := range x.starts {
		for j < len(sorted) && sorted[j]>>x.shift < uint64(b) {
			j++
		}
		x.starts[b] = uint32(j)
	}
	return x
}

// find returns the first position of k and whether it is there.
func (x *keyIndex) find(k uint64) (int, bool) {
	if len(x.keys) == 0 {
		return 0, false
	}
	b := k >> x.shift
	for i, end := int(x.starts[b]), int(x.starts[b+1]); i < end; i++ {
		if x.keys[i] >= k {
			return i, x.keys[i] == k
		}
	}
	return 0, false
}

// snapshot is an immutable live index: published whole through an atomic
// pointer, read by any number of goroutines without locks.
//
// Per indexed file it holds a 64-bit path key, an 8-byte fileRec, an 8-byte
// keyed tag (tagKey) of its SHA-256 and of its SHA-1 each with a 4-byte file index,
// about 4 bytes of bucket tables, and the path (directory index, length
// and base name) in names: about 44 bytes plus the base name. Owned files
// that are not executables or libraries cost about 9 bytes (a path key).
type snapshot struct {
	seed    maphash.Seed
	paths   keyIndex  // path keys of the indexed files
	files   []fileRec // files[i] is the file of paths.keys[i]
	sha256  keyIndex  // SHA-256 tags of the hashed, unmodified files
	by256   []uint32  // by256[i]: the file of sha256.keys[i]
	sha1    keyIndex
	by1     []uint32
	owned   keyIndex // path keys of owned files not indexed
	names   []byte   // uvarint dir index, uvarint length, base name
	dirs    []string
	aliases map[string]string // directory as listed -> canonical directory

	// results are the shared results per package: [pkg][status] for
	// package, modified and unindexed.
	results  [][3]*audit.PackageResult
	unowned  *audit.PackageResult
	unknown  *audit.PackageResult // unindexed, no package known
	complete bool                 // every file hashed: unowned is final
	dbRead   int64                // unix ns when the database was read
	builtAt  int64                // unix ns; every hash in it was taken before
	manager  string
	pending  int
}

// verdict is the answer of a lookup.
type verdict struct {
	status string
	pkg    int32 // -1 when none
	file   int32 // the relocated original in files, else -1
}

// aliasKey returns the key of p's canonical path when p's directory is an
// alias (/bin on a merged-/usr system).
func (s *snapshot) aliasKey(p string) (uint64, bool) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return 0, false
	}
	c, ok := s.aliases[p[:i]]
	if !ok || len(c)+len(p)-i > 512 {
		return 0, false
	}
	var buf [512]byte
	b := append(append(buf[:0], c...), p[i:]...)
	return maphash.Bytes(s.seed, b), true
}

// lookup judges the digest hexDigest (sha256 or sha1, by sha256) of path.
// It does not allocate. A mismatch on an owned path is returned as
// modified; the caller re-checks it (see Enricher.changing).
func (s *snapshot) lookup(path string, hexDigest string, sha256 bool) verdict {
	d, ok := tagKey.SumHex(hexDigest)
	if !ok {
		return verdict{status: "", pkg: -1, file: -1}
	}
	tab, by := &s.sha1, s.by1
	if sha256 {
		tab, by = &s.sha256, s.by256
	}
	j, hit := tab.find(d)
	k := maphash.String(s.seed, path)
	i, ok := s.paths.find(k)
	var ak uint64
	hasAlias := false
	if !ok {
		if ak, hasAlias = s.aliasKey(path); hasAlias {
			i, ok = s.paths.find(ak)
		}
	}
	if ok {
		f := &s.files[i]
		pkg := int32(f.pkg & pkgMask)
		switch {
		case f.pkg&(flagPending|flagChanging) != 0:
			return verdict{StatusUnindexed, pkg, -1}
		case f.pkg&flagModified != 0:
			return verdict{StatusModified, pkg, -1}
		}
		for ; hit && j < len(by) && tab.keys[j] == d; j++ {
			if by[j] == uint32(i) {
				return verdict{StatusPackage, pkg, -1}
			}
		}
		return verdict{StatusModified, pkg, -1}
	}
	if hit {
		f := by[j]
		return verdict{StatusRelocated, int32(s.files[f].pkg & pkgMask), int32(f)}
	}
	if !s.complete {
		return verdict{StatusUnindexed, -1, -1}
	}
	if _, ok := s.owned.find(k); ok {
		return verdict{StatusUnindexed, -1, -1}
	}
	if _, ok := s.owned.find(ak); ok && hasAlias {
		return verdict{StatusUnindexed, -1, -1}
	}
	return verdict{StatusUnowned, -1, -1}
}

// path returns the path of files[i].
func (s *snapshot) path(i int) string {
	b := s.names[s.files[i].name:]
	dir, n := binary.Uvarint(b)
	b = b[n:]
	l, n := binary.Uvarint(b)
	b = b[n:]
	return s.dirs[dir] + "/" + string(b[:l])
}

// result returns the shared result for v (never modify it), or nil when v
// judged nothing. Relocated results are built for the event (they carry
// the original path).
func (s *snapshot) result(v verdict) *audit.PackageResult {
	switch {
	case v.status == "":
		return nil
	case v.status == StatusUnowned:
		return s.unowned
	case v.pkg < 0:
		return s.unknown
	case v.status == StatusRelocated:
		p := s.results[v.pkg][0]
		return &audit.PackageResult{Status: StatusRelocated, Manager: s.manager, Name: p.Name,
			Version: p.Version, OriginalPath: s.path(int(v.file))}
	case v.status == StatusPackage:
		return s.results[v.pkg][0]
	case v.status == StatusModified:
		return s.results[v.pkg][1]
	default:
		return s.results[v.pkg][2]
	}
}
