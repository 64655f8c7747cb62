package hunt

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/recordtest"
)

var rec = recordtest.Record

// ev describes a test event.
type ev struct {
	syscall string // "59" (default), "2" (open), ...; "ima" for a lone INTEGRITY_RULE
	exe     string
	uid     int
	user    string // ENRICHED UID name; "" for a RAW-format record
	key     string
	cwd     string
	paths   []string
	// parent is the parent executable, or "comm:NAME" for a parent known
	// by its comm only (see process).
	parent string
	// ancestors are the executables of the parent's ancestors, its
	// parent first ("" for one whose executable is unknown, "comm:NAME"
	// for one known by its comm only). With parent
	// set, Ancestry is the parent followed by these, as the proc enricher
	// sets it with [enrich.proc] ancestry >= 1, unless noAncestry.
	ancestors  []string
	noAncestry bool // leave Ancestry nil, as with [enrich.proc] ancestry = 0
	blocked    bool
	vt         int64  // VirusTotal malicious count; -1 for a pending lookup
	pkg        string // package status from the packages enricher
}

// build turns e into an audit.Event as the parser and the earlier
// enrichers (proc, blocklist, packages, virustotal) would leave it.
func (e ev) build() *audit.Event {
	out := &audit.Event{ID: audit.EventID{Sec: 1764081400, Msec: 123, Serial: 42}}
	uid := strconv.Itoa(e.uid)
	if e.syscall == "ima" {
		kv := []string{"file", e.exe, "hash", "sha256:275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
			"ppid", "1943", "pid", "8205", "auid", uid, "uid", uid, "comm", "bash", "exe", "/usr/bin/bash"}
		if e.user != "" {
			kv = append(kv, "@UID", e.user)
		}
		out.Records = append(out.Records, rec("INTEGRITY_RULE", kv...))
	} else {
		nr := e.syscall
		if nr == "" {
			nr = "59"
		}
		key := e.key
		if key == "" {
			key = "(null)"
		}
		kv := []string{"arch", "c000003e", "syscall", nr, "success", "yes", "exit", "0", "items", "2",
			"ppid", "1943", "pid", "8205", "auid", "1000", "uid", uid, "gid", uid, "euid", uid,
			"tty", "(none)", "ses", "3", "comm", filepath.Base(e.exe), "exe", e.exe, "key", key}
		if e.user != "" {
			kv = append(kv, "@ARCH", "x86_64", "@SYSCALL", map[string]string{"59": "execve", "2": "open"}[nr],
				"@AUID", "alice", "@UID", e.user)
		}
		out.Records = append(out.Records, rec("SYSCALL", kv...))
		if nr == "59" {
			out.Records = append(out.Records, rec("EXECVE", "argc", "1", "a0", filepath.Base(e.exe)))
		}
		cwd := e.cwd
		if cwd == "" {
			cwd = "/home/alice"
		}
		out.Records = append(out.Records, rec("CWD", "cwd", cwd))
		for i, p := range e.paths {
			out.Records = append(out.Records, rec("PATH", "item", strconv.Itoa(i), "name", p, "nametype", "NORMAL"))
		}
		out.Records = append(out.Records, rec("PROCTITLE", "proctitle", filepath.Base(e.exe)))
	}
	if e.parent != "" {
		out.Parent = process(1943, e.parent)
		out.Parent.Args = []string{filepath.Base(e.parent)}
		if !e.noAncestry {
			out.Ancestry = []*audit.Process{out.Parent}
			for i, a := range e.ancestors {
				out.Ancestry = append(out.Ancestry, process(1900-i, a))
			}
		}
	}
	if e.blocked {
		out.Blocklist = []audit.ListHit{{List: "malwarebazaar", Label: "Mirai", Hash: "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"}}
	}
	if e.pkg != "" {
		out.Package = &audit.PackageResult{Status: e.pkg, Manager: "dpkg", Name: "coreutils", Version: "9.1-1"}
	}
	switch {
	case e.vt > 0:
		out.VirusTotal = &audit.VTResult{Status: "hit", VTVerdict: &audit.VTVerdict{Malicious: e.vt}}
	case e.vt < 0:
		out.VirusTotal = &audit.VTResult{Status: "pending"}
	}
	return out
}

// process is the process table's image of pid running exe, or, for
// "comm:NAME", of a process whose executable it could not read (another
// user's, from /proc after the privilege drop), known by its comm NAME.
func process(pid int, exe string) *audit.Process {
	if comm, ok := strings.CutPrefix(exe, "comm:"); ok {
		return &audit.Process{PID: pid, Comm: comm, UID: "0"}
	}
	return &audit.Process{PID: pid, Executable: exe, UID: "0"}
}

// testUsers stands in for /etc/passwd so results do not depend on the host.
func testUsers(name string) (uint32, bool) {
	uid, ok := map[string]uint32{"www-data": 33, "nobody": 65534, "nginx": 101}[name]
	return uid, ok
}

func mustEnricher(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	e, err := newEnricher(cfg, testUsers, nil)
	if err != nil {
		t.Fatalf("newEnricher: %v", err)
	}
	return e
}

// only returns a config with the given rules and no built-in ones.
func only(rules ...RuleConfig) Config {
	c := DefaultConfig()
	c.UseDefaults = false
	c.Rules = rules
	return c
}
