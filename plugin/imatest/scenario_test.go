package imatest

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// scenario is what one exec in the guest must produce.
type scenario struct {
	ID    string
	Title string
	// Path is the decoded file= of the first INTEGRITY_RULE record.
	Path string
	// Interpreter is the decoded file= of the second INTEGRITY_RULE record
	// (scripts only); Hashes[1] is its digest.
	Interpreter string
	// Hashes are the SHA-256 digests the event must carry, the executed
	// file first, computed on the host from the bytes put in the guest.
	Hashes []string
	// HexPath: the kernel hex-encodes file= (a space in the path).
	HexPath bool
	// Key is the audit rule key expected on the SYSCALL record ("" none).
	// Keys are tags of the event too.
	Key string
	// AUID, UID: expected login and real user (names), "" when not checked.
	AUIDName, UIDName string
	AUID, UID         string
	// Tags are exactly the tags the plugin must put on the event.
	Tags []string
	// Blocklist names the blocklist that must match the first hash.
	Blocklist string
	// Hunt names exactly the hunting rules that must match.
	Hunt []string
	// Technique, TechniqueName, Tactic: the ATT&CK tagging expected.
	Technique, TechniqueName, Tactic string
	// Package is the package-trust verdict (the document's package object)
	// expected; the zero value means unowned (by dpkg's database: no owner,
	// no original path).
	Package pkgVerdict
}

// pkgVerdict is the part of the document's package object the checks read.
type pkgVerdict struct {
	Status       string `json:"status"`
	Manager      string `json:"manager"`
	Name         string `json:"name"`
	Version      string `json:"version"`
	OriginalPath string `json:"original_path"`
}

// guestPkg is the verdict for a file of the guest's package.
func guestPkg(status, orig string) pkgVerdict {
	return pkgVerdict{Status: status, Manager: "dpkg", Name: guestPkgName, Version: guestPkgVersion, OriginalPath: orig}
}

// scenarios returns the table for the files in g.
func scenarios(g *guestFiles) []scenario {
	return []scenario{
		{ID: "s1", Title: "a fresh binary", Path: "/opt/imatest/fresh", Hashes: []string{sha256hex(g.fresh)}},
		{ID: "s2", Title: "a blocklisted binary run from /dev/shm", Path: "/dev/shm/dropper",
			Hashes: []string{sha256hex(g.dropper)}, Blocklist: testBlocklist,
			// Built-in rules (enrich/hunt/defaults.toml): exec_from_temp_dir
			// (tag exec_from_temp, no technique: the place alone is none) and
			// blocklisted_hash (tag known_bad); so no threat.
			Hunt: []string{tempDirHuntRule, "blocklisted_hash"},
			Tags: []string{"blocklist:" + testBlocklist, "hunt:" + tempDirHuntRule, "exec_from_temp",
				"hunt:blocklisted_hash", "known_bad"}},
		{ID: "s3", Title: "a script run through its interpreter", Path: "/opt/imatest/script.sh", Interpreter: "/bin/busybox",
			Hashes: []string{sha256hex(g.script), sha256hex(g.busybox)}},
		{ID: "s4", Title: "a path with a space", Path: "/opt/imatest/with space/hello world",
			Hashes: []string{sha256hex(g.helloV1)}, HexPath: true},
		{ID: "s5", Title: "the same path after its content changed", Path: "/opt/imatest/with space/hello world",
			Hashes: []string{sha256hex(g.helloV2)}, HexPath: true},
		{ID: "s6", Title: "a binary watched with -k T1140_decode", Path: "/opt/imatest/b64dec",
			Hashes: []string{sha256hex(g.b64dec)}, Key: "T1140_decode", Tags: []string{"T1140_decode"},
			Technique: "T1140", TechniqueName: "Deobfuscate/Decode Files or Information", Tactic: "Defense Evasion"},
		{ID: "s7", Title: "an unprivileged user with a login uid", Path: "/opt/imatest/userprog",
			Hashes: []string{sha256hex(g.userprog)}, AUID: "1000", AUIDName: "alice", UID: "1001", UIDName: "bob",
			// The watch key imatest_user carries no technique id: the test's
			// key map maps it to T1078.003.
			Key: testKey, Tags: []string{testKey},
			Technique: testKeyTechID, TechniqueName: "Local Accounts", Tactic: "Initial Access"},
		{ID: "s9", Title: "a package's binary where it installed it", Path: guestPkgNC,
			Hashes: []string{sha256hex(g.pkgNC)}, Package: guestPkg("package", "")},
		// The copy has the same content as s9's file: the events differ by path.
		{ID: "s10", Title: "a package's binary copied and renamed", Path: guestRelocated,
			Hashes: []string{sha256hex(g.pkgNC)}, Package: guestPkg("relocated", guestPkgNC),
			Hunt:      []string{tempDirHuntRule, "package_file_relocated"},
			Tags:      []string{"hunt:" + tempDirHuntRule, "exec_from_temp", "hunt:package_file_relocated", "package:relocated"},
			Technique: "T1036.003", TechniqueName: "Rename Legitimate Utilities", Tactic: "Defense Evasion"},
		{ID: "s11", Title: "a package's binary changed in place", Path: guestPkgED,
			Hashes: []string{sha256hex(g.pkgEDv2)}, Package: guestPkg("modified", ""),
			Hunt: []string{"package_file_modified"}, Tags: []string{"hunt:package_file_modified", "package:modified"},
			Technique: "T1554", TechniqueName: "Compromise Host Software Binary", Tactic: "Persistence"},
	}
}

// checkRaw checks the kernel's and auditd's side of every scenario on the
// string records auditd wrote to audit.log, independently of the plugin.
func checkRaw(t *testing.T, name, source string, recs []rawRecord, scs []scenario) {
	for _, sc := range scs {
		t.Run(name+"/"+sc.ID, func(t *testing.T) {
			wantFile := `"` + sc.Path + `"`
			if sc.HexPath {
				wantFile = strings.ToUpper(hex.EncodeToString([]byte(sc.Path)))
			}
			ev := rawEventWithHash(recs, sc.Hashes[0], wantFile)
			if ev == nil {
				t.Fatalf("%s: %s: no INTEGRITY_RULE with sha256:%s and file=%s in %s", sc.ID, sc.Title, sc.Hashes[0], wantFile, source)
			}
			if got := ev.hashes(); !slices.Equal(got, sc.Hashes) {
				t.Errorf("%s: INTEGRITY_RULE hashes %v, want %v (serial %s)", sc.ID, got, sc.Hashes, ev[0].Serial)
			}
			for _, typ := range []string{"INTEGRITY_RULE", "SYSCALL", "EXECVE", "PROCTITLE"} {
				if _, ok := ev.first(typ); !ok {
					t.Errorf("%s: event %s lacks %s: has %v", sc.ID, ev[0].Serial, typ, ev.types())
				}
			}
			ir, _ := ev.first("INTEGRITY_RULE")
			if ir.Fields["file"] != wantFile {
				t.Errorf("%s: file=%s, want %s", sc.ID, ir.Fields["file"], wantFile)
			}
			sys, _ := ev.first("SYSCALL")
			if sc.Key != "" && sys.Fields["key"] != `"`+sc.Key+`"` {
				t.Errorf("%s: SYSCALL key=%s, want %q", sc.ID, sys.Fields["key"], sc.Key)
			}
			if sc.AUID != "" {
				got := fmt.Sprintf("auid=%s uid=%s AUID=%s UID=%s", sys.Fields["auid"], sys.Fields["uid"], sys.Interp["AUID"], sys.Interp["UID"])
				want := fmt.Sprintf("auid=%s uid=%s AUID=%s UID=%s", sc.AUID, sc.UID, sc.AUIDName, sc.UIDName)
				if got != want {
					t.Errorf("%s: SYSCALL %s, want %s", sc.ID, got, want)
				}
			}
			t.Logf("%s %-45s serial %s sha256 %s", sc.ID, sc.Title, ev[0].Serial, strings.Join(ev.hashes(), " + "))
		})
	}
}

// The name the guest's plugin config gives to the test's blocklist, and the
// built-in hunting rule for executions from temporary directories.
const (
	testBlocklist   = "imatest"
	tempDirHuntRule = "exec_from_temp_dir"
)

// checkPluginProcess is scenario 8: the plugin as /proc showed it inside the
// guest after startup must run as its service user with no capabilities.
func checkPluginProcess(t *testing.T, facts map[string]string) {
	t.Run("s8", func(t *testing.T) {
		t.Logf("s8 plugin pid %s: Uid %q Gid %q Groups %q CapEff %s CapPrm %s CapBnd %s CapAmb %s NoNewPrivs %s user %s",
			facts["s8.pid"], facts["s8.Uid"], facts["s8.Gid"], facts["s8.Groups"], facts["s8.CapEff"],
			facts["s8.CapPrm"], facts["s8.CapBnd"], facts["s8.CapAmb"], facts["s8.NoNewPrivs"], facts["s8.user"])
		if facts["s8.pid"] == "" {
			t.Fatalf("s8: the plugin was not running after the scenarios")
		}
		want := fmt.Sprint(serviceUID)
		if u := strings.Fields(facts["s8.Uid"]); len(u) != 4 || u[0] != want || u[1] != want || u[2] != want || u[3] != want {
			t.Errorf("s8: plugin Uid (real, effective, saved, fs) = %q, want all %s (audisp-enrich)", facts["s8.Uid"], want)
		}
		if g := strings.Fields(facts["s8.Gid"]); len(g) != 4 || g[0] != want || g[1] != want || g[2] != want || g[3] != want {
			t.Errorf("s8: plugin Gid = %q, want all %s", facts["s8.Gid"], want)
		}
		for _, c := range []string{"CapEff", "CapPrm", "CapAmb"} {
			if facts["s8."+c] != "0000000000000000" {
				t.Errorf("s8: plugin %s = %s, want 0000000000000000", c, facts["s8."+c])
			}
		}
		if facts["s8.NoNewPrivs"] != "1" {
			t.Errorf("s8: plugin NoNewPrivs = %q, want 1", facts["s8.NoNewPrivs"])
		}
	})
}

// parseFacts reads the guest's KEY=VALUE facts file (later keys win).
func parseFacts(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}
