package packages

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"path"
	"slices"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/enrich/digesttag"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// entry is one file of the index while it is built.
type entry struct {
	path   string // canonical
	pkg    int32
	flags  uint32 // flagPending, flagModified, flagChanging
	sha256 uint64 // tags (tagKey) of the file's digests
	sha1   uint64
}

// tagKey keys the digest tags of the live index (per process).
var tagKey = digesttag.New()

// tags returns h's SHA-256 and SHA-1 tags.
func tags(h *hashed) (uint64, uint64) { return tagKey.Sum(h.SHA256[:]), tagKey.Sum(h.SHA1[:]) }

// isLibrary reports whether a base name is a shared library's (lib.so,
// lib.so.6, lib.so.6.0.1).
func isLibrary(base string) bool {
	i := strings.Index(base, ".so")
	return i > 0 && (i+3 == len(base) || base[i+3] == '.')
}

// newSnapshot builds the live index from entries (indexed files), owned
// (canonical paths of other owned files), the directory aliases and the
// packages. complete says that no file waits for hashing.
func newSnapshot(db *database, entries []entry, ownedPaths []string, aliases map[string]string, dbRead int64) *snapshot {
	s := &snapshot{seed: maphash.MakeSeed(), aliases: aliases, dbRead: dbRead, manager: db.manager}
	type keyed struct {
		k uint64
		i int
	}
	ks := make([]keyed, len(entries))
	for i := range entries {
		ks[i] = keyed{maphash.String(s.seed, entries[i].path), i}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return cmp.Compare(a.k, b.k) })
	paths := make([]uint64, 0, len(ks))
	s.files = make([]fileRec, 0, len(ks))
	var d256, d1 []digestRef
	dirIdx := map[string]int{}
	var buf [2 * binary.MaxVarintLen64]byte
	for j, kv := range ks {
		if j > 0 && kv.k == ks[j-1].k {
			continue // the same path twice (or a 64-bit key collision): first wins
		}
		e := &entries[kv.i]
		if e.flags&flagPending != 0 {
			s.pending++
		}
		dir, base := path.Split(e.path)
		dir = strings.TrimSuffix(dir, "/")
		di, ok := dirIdx[dir]
		if !ok {
			di = len(s.dirs)
			dirIdx[dir] = di
			s.dirs = append(s.dirs, dir)
		}
		off := len(s.names)
		n := binary.PutUvarint(buf[:], uint64(di))
		n += binary.PutUvarint(buf[n:], uint64(len(base)))
		s.names = append(append(s.names, buf[:n]...), base...)
		if e.flags == 0 {
			d256 = append(d256, digestRef{e.sha256, uint32(len(s.files))})
			d1 = append(d1, digestRef{e.sha1, uint32(len(s.files))})
		}
		paths = append(paths, kv.k)
		s.files = append(s.files, fileRec{pkg: uint32(e.pkg) | e.flags, name: uint32(off)})
	}
	s.paths = newKeyIndex(paths)
	s.sha256, s.by256 = digestTable(d256)
	s.sha1, s.by1 = digestTable(d1)
	owned := make([]uint64, len(ownedPaths))
	for i, p := range ownedPaths {
		owned[i] = maphash.String(s.seed, p)
	}
	slices.Sort(owned)
	s.owned = newKeyIndex(slices.Compact(owned))
	s.complete = s.pending == 0
	s.results = make([][3]*audit.PackageResult, len(db.pkgs))
	for i, p := range db.pkgs {
		for j, st := range [...]string{StatusPackage, StatusModified, StatusUnindexed} {
			s.results[i][j] = &audit.PackageResult{Status: st, Manager: db.manager, Name: p.Name, Version: p.Version}
		}
	}
	s.unowned = &audit.PackageResult{Status: StatusUnowned, Manager: db.manager}
	s.unknown = &audit.PackageResult{Status: StatusUnindexed, Manager: db.manager}
	return s
}

type digestRef struct {
	d    uint64
	file uint32
}

// digestTable sorts refs by digest into a key index and the parallel
// file indexes.
func digestTable(refs []digestRef) (keyIndex, []uint32) {
	slices.SortFunc(refs, func(a, b digestRef) int { return cmp.Compare(a.d, b.d) })
	keys, files := make([]uint64, len(refs)), make([]uint32, len(refs))
	for i, r := range refs {
		keys[i], files[i] = r.d, r.file
	}
	return newKeyIndex(keys), files
}

// ownedBytes is the part of liveBytes that the owned, not indexed files take.
func (s *snapshot) ownedBytes() int { return 8*len(s.owned.keys) + 4*len(s.owned.starts) }

// liveBytes is the memory the snapshot's per-file tables take.
func (s *snapshot) liveBytes() int {
	n := 8*len(s.files) + 4*(len(s.by256)+len(s.by1)) + len(s.names)
	for _, x := range []*keyIndex{&s.paths, &s.sha256, &s.sha1, &s.owned} {
		n += 8*len(x.keys) + 4*len(x.starts)
	}
	return n
}
