package hunt

import (
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

// The cache returns what computing the facts directly gives, for paths
// that share cells (more paths than cells), hit or miss, from several
// goroutines at once, and keeps no reference to the caller's string.
func TestExeCacheMatchesDirect(t *testing.T) {
	e, err := New(Config{UseDefaults: true, TempDirs: []string{"/tmp", "/var/tmp", "/dev/shm"},
		SystemDirs: []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib/*"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range 3 * exeCacheSize {
		switch i % 5 {
		case 0:
			paths = append(paths, fmt.Sprintf("/tmp/x%d/../.hid%d/run", i, i))
		case 1:
			paths = append(paths, fmt.Sprintf("/usr/bin/tool%d", i))
		case 2:
			paths = append(paths, fmt.Sprintf("/usr/lib/pkg%d/helper", i))
		case 3:
			paths = append(paths, fmt.Sprintf("//opt//app%d/./bin", i))
		default:
			paths = append(paths, fmt.Sprintf("/dev/shm/%d", i))
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for i, raw := range paths {
					if (i+g+round)%2 == 0 {
						continue
					}
					clean, got := e.exes.lookup(raw, e)
					want := path.Clean(raw)
					wantFacts := exeFacts{base: path.Base(want), inTemp: e.temp.under(want), hidden: hidden(want), system: e.system.under(want)}
					for i, r := range e.rules {
						if r.hasExeConds && r.exeHolds(want, &wantFacts) {
							wantFacts.rules |= 1 << i
						}
					}
					if clean != want || got != wantFacts {
						t.Errorf("lookup(%q) = %q %+v, want %q %+v", raw, clean, got, want, wantFacts)
						return
					}
				}
			}
		}()
	}
	wg.Wait()

	// An entry owns its strings: changing the caller's bytes afterwards
	// does not change what the cache holds.
	buf := []byte("/tmp/owned/prog")
	e.exes.lookup(unsafe.String(&buf[0], len(buf)), e)
	buf[1] = '#'
	for i := range e.exes.cells {
		if x := e.exes.cells[i].Load(); x != nil && (x.raw == "/#mp/owned/prog" || x.clean == "/#mp/owned/prog") {
			t.Fatalf("cache entry aliases the caller's bytes: %+v", x)
		}
	}
	if clean, _ := e.exes.lookup("/tmp/owned/prog", e); clean != "/tmp/owned/prog" {
		t.Errorf("after the caller's change: %q", clean)
	}
}

// Rules past the 64 whose exe answers the cache carries are matched
// directly, with the same result; a cached executable matches the same
// rules the second time.
func TestManyRulesExeConditions(t *testing.T) {
	var rules []RuleConfig
	for i := range 70 {
		rules = append(rules, RuleConfig{Name: fmt.Sprintf("r%d", i), Severity: "low", Exec: true,
			ExeName: []string{fmt.Sprintf("prog%d", i)}})
	}
	// One rule every executable under /opt meets, after the 64th.
	rules = append(rules, RuleConfig{Name: "opt", Severity: "low", Exec: true, Exe: []string{"/opt/*"}})
	e := mustEnricher(t, only(rules...))
	for _, i := range []int{0, 63, 64, 69} {
		for range 2 {
			got := hits(t, e, ev{exe: fmt.Sprintf("/opt/prog%d", i)}.build())
			want := []string{fmt.Sprintf("r%d", i), "opt"}
			if !slices.Equal(got, want) {
				t.Errorf("/opt/prog%d: hits %q, want %q", i, got, want)
			}
		}
	}
	if got := hits(t, e, ev{exe: "/usr/bin/prog70"}.build()); len(got) != 0 {
		t.Errorf("/usr/bin/prog70: hits %q", got)
	}
}
