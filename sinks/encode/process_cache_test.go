package encode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// processEvent is an audit event with the process context the process
// table adds: parent, ancestry and cgroup facts.
func processEvent(i int, parent *audit.Process, chain []*audit.Process, cg *audit.Cgroup) *audit.Event {
	ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1796454792, Serial: uint32(i)}}
	ev.Summary = &audit.Summary{PID: "4242", Exe: "/tmp/worker"}
	ev.Parent, ev.Ancestry, ev.Cgroup = parent, chain, cg
	return ev
}

// The full encoder's process context caches (parent, ancestry, cgroup
// facts, kept by identity) must write what writing them writes, in both
// formats and with the format switched on one encoder: the same values
// again; another value with the same contents; another parent, chain or
// cgroup (a different pid, executable, unit); values that need escaping
// (listed under "escaped" again); a shorter chain of the same array;
// values left out.
func TestProcessContextCacheExact(t *testing.T) {
	bash := &audit.Process{PID: 100, Executable: "/usr/bin/bash", Args: []string{"bash", "-c", "/tmp/worker"}}
	bash2 := &audit.Process{PID: 100, Executable: "/usr/bin/bash", Args: []string{"bash", "-c", "/tmp/worker"}}
	sh := &audit.Process{PID: 101, Executable: "/usr/bin/sh", Args: []string{"sh", `quote"d`}}
	odd := &audit.Process{PID: 102, Executable: "/tmp/bad\xff", Args: []string{"bad\xff"}}
	initp := &audit.Process{PID: 1, Executable: "/usr/lib/systemd/systemd"}
	fpm := &audit.Process{PID: 103, Comm: "php-fpm8.2", Args: []string{"php-fpm: pool www"}} // executable unknown
	chain := []*audit.Process{bash, sh, initp}
	fpmChain := []*audit.Process{sh, fpm, initp}
	chain2 := []*audit.Process{bash, odd, initp}
	oddChain := []*audit.Process{odd, odd, initp}
	unit := &audit.Cgroup{Path: "/system.slice/cron.service", Unit: "cron.service"}
	unit2 := &audit.Cgroup{Path: "/system.slice/cron.service", Unit: "cron.service"}
	ctr := &audit.Cgroup{Path: "/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope", ContainerID: strings.Repeat("ab", 32), Runtime: "docker"}
	oddUnit := &audit.Cgroup{Path: "/user.slice/bad\xff.service", Unit: "bad\xff.service", UserOf: "1000"}
	type c struct {
		parent *audit.Process
		chain  []*audit.Process
		cg     *audit.Cgroup
	}
	cases := []c{
		{bash, chain, unit}, {bash, chain, unit}, {bash2, chain, unit2}, {bash2, chain, unit2}, {sh, chain, unit},
		{bash, chain2, unit}, {bash, chain[:2], ctr}, {bash, chain[:2], ctr}, {bash, chain, ctr}, {odd, oddChain, oddUnit},
		{odd, oddChain, oddUnit}, {odd, oddChain[:1], &audit.Cgroup{}}, {odd, oddChain[:1], &audit.Cgroup{}}, {nil, nil, nil},
		{bash, slices.Clone(chain), unit}, {bash, nil, nil}, {bash, chain, unit},
		{fpm, fpmChain[1:], unit}, {fpm, fpmChain[1:], unit}, {sh, fpmChain, unit},
	}
	cached := Full{}
	for _, f := range []Format{JSON, Msgpack, JSON} {
		cached.Format = f
		for i, k := range cases {
			ev := processEvent(i, k.parent, k.chain, k.cg)
			got := slices.Clone(cached.Append(nil, ev))
			fresh := Full{Format: f}
			if want := fresh.Append(nil, ev); !bytes.Equal(got, want) {
				t.Errorf("format %d case %d: cached %q\nwant %q", f, i, got, want)
			}
		}
	}
	// The caches are really used: the second event with the same values
	// is written from the kept bytes, even after the values changed under
	// them (which audit.Enrichment's contract forbids: done here only to
	// tell a copy from a fresh write).
	p := &audit.Process{PID: 7, Executable: "/usr/bin/bash"}
	cg := &audit.Cgroup{Unit: "cron.service"}
	cached = Full{}
	cached.Append(nil, processEvent(0, p, []*audit.Process{p, initp}, cg))
	p.Executable, cg.Unit = "/usr/bin/zsh", "at.service"
	doc := string(cached.Append(nil, processEvent(1, p, cached.chain.src, cg)))
	if strings.Contains(doc, "zsh") || strings.Contains(doc, "at.service") {
		t.Errorf("the second event's process context was written again, not copied: %s", doc)
	}
}

// The caches hold the values they compare against, so their memory cannot
// be reused for other values while they do: values made afresh for each
// event, with a collection between events, never get an earlier event's
// bytes.
func TestProcessContextCacheAfterGC(t *testing.T) {
	var cached Full
	for i := range 200 {
		p := &audit.Process{PID: 100 + i%3, Executable: fmt.Sprintf("/usr/bin/p%d", i%5), Args: []string{fmt.Sprint(i)}}
		chain := []*audit.Process{p, {PID: 1, Executable: fmt.Sprintf("/sbin/init%d", i%7)}}
		cg := &audit.Cgroup{Unit: fmt.Sprintf("u%d.service", i)}
		ev := processEvent(i, p, chain, cg)
		got := slices.Clone(cached.Append(nil, ev))
		var fresh Full
		if want := fresh.Append(nil, ev); !bytes.Equal(got, want) {
			t.Fatalf("event %d: cached %q\nwant %q", i, got, want)
		}
		runtime.GC()
	}
}

// Every process-context value that is not UTF-8 is listed under
// "escaped" (docs/schema.md), when written afresh and when copied from
// the caches: the parent's executable and arguments, the chain's
// executables, the container's and systemd's facts, the cgroup path.
func TestProcessContextEscaped(t *testing.T) {
	bad := "x\xff"
	parent := &audit.Process{PID: 7, Executable: "/tmp/" + bad, Args: []string{"sh", bad}}
	chain := []*audit.Process{parent, {PID: 1, Executable: "/sbin/" + bad}, {PID: 2, Comm: bad}}
	cg := &audit.Cgroup{Path: "/" + bad, ContainerID: bad, Runtime: bad, PodUID: bad, Unit: bad, UserOf: bad}
	want := []string{"process.parent.executable", "process.parent.args", "ancestry.executable", "ancestry.comm", "container.id",
		"container.runtime", "container.pod_uid", "systemd.unit", "systemd.user_id", "cgroup"}
	var e Full
	for i := range 2 { // the second event is written from the caches
		var doc struct{ Escaped []string }
		if err := json.Unmarshal(e.Append(nil, processEvent(i, parent, chain, cg)), &doc); err != nil {
			t.Fatal(err)
		}
		for _, p := range want {
			if !slices.Contains(doc.Escaped, p) {
				t.Errorf("event %d: %q not under escaped: %q", i, p, doc.Escaped)
			}
		}
	}
}

// A process the table knows without executable (its /proc/<pid>/exe was
// refused) is written with its comm, never as an executable, as parent
// and in the ancestry, valid against the schema.
func TestProcessWithoutExecutable(t *testing.T) {
	fpm := &audit.Process{PID: 500, Comm: "php-fpm8.2", Args: []string{"php-fpm: pool www"}, UID: "33"}
	master := &audit.Process{PID: 499, Comm: "php-fpm8.2\xff"}
	var e Full
	doc := e.Append(nil, processEvent(0, fpm, []*audit.Process{fpm, master}, nil))
	validate(t, doc)
	var got struct {
		Process struct {
			Parent map[string]any
		}
		Ancestry []map[string]any
		Escaped  []string
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	if p := got.Process.Parent; p["comm"] != "php-fpm8.2" || p["executable"] != nil || p["pid"] != 500.0 {
		t.Errorf("process.parent = %v, want pid 500, comm php-fpm8.2, no executable", p)
	}
	if len(got.Ancestry) != 2 || got.Ancestry[1]["comm"] == nil || got.Ancestry[1]["executable"] != nil {
		t.Errorf("ancestry = %v, want the master by its comm, without executable", got.Ancestry)
	}
	if !slices.Equal(got.Escaped, []string{"ancestry.comm"}) {
		t.Errorf("escaped %q, want [ancestry.comm]", got.Escaped)
	}
}
