package packages

import (
	"context"
	"fmt"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// BenchmarkReadDpkg reads this machine's dpkg database (status and every
// md5sums file).
func BenchmarkReadDpkg(b *testing.B) {
	needDpkg(b)
	for b.Loop() {
		db, _, err := readDpkg("/")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(db.files)), "files")
	}
}

// BenchmarkPlan reads the database and plans an index of two files (the
// work of a refresh that hashes nothing).
func BenchmarkPlan(b *testing.B) {
	needDpkg(b)
	cfg := testConfig(b, "/usr/bin/ls", "/usr/bin/env")
	for b.Loop() {
		db, _, err := readDpkg("/")
		if err != nil {
			b.Fatal(err)
		}
		if _, errs := makePlan(cfg, db); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// benchSnapshot indexes every file of this machine's dpkg database with
// made-up digests (the lookup cost depends on the number of files, not on
// their content) and returns it with a listed path and its digest.
func benchSnapshot(b *testing.B) (*snapshot, []entry) {
	needDpkg(b)
	db, _, err := readDpkg("/")
	if err != nil {
		b.Fatal(err)
	}
	r := resolver{root: "/", cache: map[string]string{}}
	aliases := map[string]string{}
	es := make([]entry, 0, len(db.files))
	for i, f := range db.files {
		dir, base := path.Split(f.Path)
		dir = path.Clean(dir)
		if c := r.dir(dir, 0); c != dir {
			aliases[dir] = c
			dir = c
		}
		t256, _ := tagKey.SumHex(benchHex(i, 64))
		t1, _ := tagKey.SumHex(benchHex(i, 40))
		es = append(es, entry{path: path.Join(dir, base), pkg: f.Pkg, sha256: t256, sha1: t1})
	}
	return newSnapshot(db, es, nil, aliases, 0), es
}

// benchHex is the made-up digest of benchSnapshot's i-th file, n hex digits.
func benchHex(i, n int) string {
	return (fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15+uint64(n)) + strings.Repeat("0", 64))[:n]
}

// BenchmarkLookup judges digests against an index of every dpkg file of
// this machine (about 100,000): package (canonical path), package through
// a merged-/usr alias, relocated, unowned.
func BenchmarkLookup(b *testing.B) {
	s, es := benchSnapshot(b)
	b.ReportMetric(float64(s.liveBytes())/float64(len(s.files)), "live-bytes/file")
	var e *entry
	var hex256 string
	for i := range es {
		if strings.HasPrefix(es[i].path, "/usr/bin/") {
			e, hex256 = &es[i], benchHex(i, 64)
			break
		}
	}
	if e == nil {
		b.Skip("no file in /usr/bin")
	}
	cases := []struct{ name, path, want string }{
		{"package", e.path, StatusPackage},
		{"alias", strings.TrimPrefix(e.path, "/usr"), StatusPackage},
		{"relocated", "/tmp/.x/httpd", StatusRelocated},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v := s.lookup(c.path, hex256, true); v.status != c.want {
					b.Fatalf("%s: %+v", c.path, v)
				}
			}
		})
	}
	b.Run("unowned", func(b *testing.B) {
		s.complete = true
		other := strings.Repeat("f", 64)
		b.ReportAllocs()
		for b.Loop() {
			if v := s.lookup("/tmp/.x/httpd", other, true); v.status != StatusUnowned {
				b.Fatalf("%+v", v)
			}
		}
	})
}

// BenchmarkIndexMachine builds the index of every package executable and
// library of this machine at full speed into an empty state directory,
// then opens it again on the same directory. Run it once:
//
//	go test -run '^$' -bench IndexMachine -benchtime 1x ./enrich/packages/
//
// It reports files, bytes hashed, CPU seconds and live index bytes of the
// build, and the files hashed again after the restart (0 expected).
func BenchmarkIndexMachine(b *testing.B) {
	needDpkg(b)
	cfg := testConfig(b)
	for b.Loop() {
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		e := New(cfg, testLog(b), &metrics.Registry{})
		if err := e.Index().Wait(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		wall := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		st := e.Index().Stats()
		owned := e.Index().cur.Load().ownedBytes()
		e.Close()
		cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond

		start = time.Now()
		e2 := New(cfg, testLog(b), &metrics.Registry{})
		if err := e2.Index().Wait(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		again := time.Since(start)
		st2 := e2.Index().Stats()
		e2.Close()
		b.ReportMetric(wall.Seconds(), "build-s")
		b.ReportMetric(cpu.Seconds(), "build-cpu-s")
		b.ReportMetric(float64(st.Files), "files")
		b.ReportMetric(float64(st.Owned), "other-files")
		b.ReportMetric(float64(st.BytesHashed)/1e6, "MB-hashed")
		b.ReportMetric(float64(st.Modified), "modified")
		b.ReportMetric(float64(st.Unreadable), "unreadable")
		b.ReportMetric(float64(st.LiveBytes), "live-bytes")
		b.ReportMetric(float64(st.LiveBytes-owned)/float64(st.Files), "live-bytes/indexed-file")
		b.ReportMetric(float64(owned)/float64(st.Owned), "live-bytes/other-file")
		b.ReportMetric(float64(maxRSS(ru1)), "maxrss-KB")
		b.ReportMetric(again.Seconds(), "restart-s")
		b.ReportMetric(float64(st2.Hashed), "restart-rehashed")
		b.ReportMetric(float64(st2.Reused), "restart-reused")
	}
}

func maxRSS(ru syscall.Rusage) int64 { return ru.Maxrss }

// BenchmarkEnrich runs the whole Enrich call (hash choice, lookup, shared
// result) for an event with one SHA-256 of a package file at its path.
func BenchmarkEnrich(b *testing.B) {
	s, es := benchSnapshot(b)
	e := &Enricher{idx: &Index{}, lookups: map[string]*metrics.Counter{}}
	for _, st := range []string{StatusPackage, StatusModified, StatusRelocated, StatusUnowned, StatusUnindexed} {
		e.lookups[st] = (&metrics.Registry{}).Counter("x", "", "")
	}
	e.idx.cur.Store(s)
	f := es[len(es)/2]
	ev := &audit.Event{}
	ev.Hashes = []audit.FileHash{{Path: f.path, Algo: "sha256", Hex: benchHex(len(es)/2, 64)}}
	b.ReportAllocs()
	for b.Loop() {
		ev.Package = nil
		_ = e.Enrich(context.Background(), ev)
		if ev.Package == nil || ev.Package.Status != StatusPackage {
			b.Fatalf("%+v", ev.Package)
		}
	}
}
