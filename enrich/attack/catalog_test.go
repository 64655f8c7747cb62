package attack

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// The counts SOURCE.md gives for the v18.1 data files.
const (
	wantRows       = 835
	wantSub        = 479
	wantRevoked    = 132
	wantDeprecated = 12
)

func TestCatalogCounts(t *testing.T) {
	if Version != "18.1" {
		t.Errorf("Version = %q, want 18.1", Version)
	}
	sub, rev, dep := 0, 0, 0
	for _, r := range catalog {
		if strings.Contains(r.id, ".") {
			sub++
		}
		if r.flags&revoked != 0 {
			rev++
		}
		if r.flags&deprecated != 0 {
			dep++
		}
	}
	if len(catalog) != wantRows || sub != wantSub || rev != wantRevoked || dep != wantDeprecated {
		t.Errorf("catalog: %d rows, %d sub-techniques, %d revoked, %d deprecated; want %d, %d, %d, %d",
			len(catalog), sub, rev, dep, wantRows, wantSub, wantRevoked, wantDeprecated)
	}
	if len(tactics) != 14 {
		t.Errorf("%d tactics, want 14", len(tactics))
	}
}

var (
	reID       = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
	reTactic   = regexp.MustCompile(`^TA[0-9]{4}$`)
	reTechURL  = regexp.MustCompile(`^https://attack\.mitre\.org/techniques/T[0-9]{4}(/[0-9]{3})?/$`)
	reTacticRL = regexp.MustCompile(`^https://attack\.mitre\.org/tactics/TA[0-9]{4}/$`)
)

// Every technique has an id, a name, a URL built from its id and at least
// one tactic; every sub-technique's parent exists; every revoked technique
// points at an unrevoked one.
func TestCatalogIntegrity(t *testing.T) {
	ids := map[string]bool{}
	for _, r := range catalog {
		if ids[r.id] {
			t.Errorf("%s listed twice", r.id)
		}
		ids[r.id] = true
	}
	for i, r := range catalog {
		te := techs[i]
		if !reID.MatchString(r.id) || te.ID != r.id {
			t.Errorf("row %d: bad id %q / %q", i, r.id, te.ID)
		}
		if te.Name == "" {
			t.Errorf("%s: no name", r.id)
		}
		wantURL := "https://attack.mitre.org/techniques/" + strings.ReplaceAll(r.id, ".", "/") + "/"
		if te.Reference != wantURL || !reTechURL.MatchString(te.Reference) {
			t.Errorf("%s: Reference %q, want %q", r.id, te.Reference, wantURL)
		}
		if len(te.Tactics) == 0 {
			t.Errorf("%s: no tactics", r.id)
		}
		for _, ta := range te.Tactics {
			if !reTactic.MatchString(ta.ID) || ta.Name == "" || !reTacticRL.MatchString(ta.Reference) ||
				!strings.HasSuffix(ta.Reference, "/"+ta.ID+"/") {
				t.Errorf("%s: bad tactic %+v", r.id, ta)
			}
		}
		if p, sub, _ := strings.Cut(r.id, "."); sub != "" {
			if !ids[p] {
				t.Errorf("%s: parent %s is not in the catalog", r.id, p)
			}
			if te.ParentID != p || te.Parent == "" || te.Parent != catalog[byID[p]].name {
				t.Errorf("%s: parent %q %q, want %s %q", r.id, te.ParentID, te.Parent, p, catalog[byID[p]].name)
			}
		} else if te.ParentID != "" || te.Parent != "" {
			t.Errorf("%s: top-level technique has parent %q", r.id, te.ParentID)
		}
		if r.flags&revoked != 0 {
			f, ok := byID[r.replacedBy]
			if !ok || catalog[f].flags&revoked != 0 {
				t.Errorf("%s: revoked, replacement %q missing or revoked", r.id, r.replacedBy)
			}
		} else if r.replacedBy != "" {
			t.Errorf("%s: not revoked but replacedBy %q", r.id, r.replacedBy)
		}
	}
}

func TestLookup(t *testing.T) {
	shell := audit.Technique{
		ID:        "T1059.004",
		Name:      "Unix Shell",
		Reference: "https://attack.mitre.org/techniques/T1059/004/",
		ParentID:  "T1059",
		Parent:    "Command and Scripting Interpreter",
		Tactics:   []audit.Tactic{{ID: "TA0002", Name: "Execution", Reference: "https://attack.mitre.org/tactics/TA0002/"}},
	}
	got, ok := Lookup("T1059.004")
	if !ok || !reflect.DeepEqual(got, shell) {
		t.Fatalf("Lookup(T1059.004) = %+v, %v\nwant %+v", got, ok, shell)
	}
	// Tactics come in matrix order whatever the order in the data.
	setuid, _ := Lookup("T1548.001")
	if len(setuid.Tactics) != 2 || setuid.Tactics[0].ID != "TA0004" || setuid.Tactics[1].ID != "TA0005" {
		t.Errorf("T1548.001 tactics %+v, want TA0004 Privilege Escalation, TA0005 Defense Evasion", setuid.Tactics)
	}

	cases := []struct {
		in, want, name string
	}{
		{"T1059", "T1059", "Command and Scripting Interpreter"},
		{"t1059.004", "T1059.004", "Unix Shell"},
		{" \tT1014\n", "T1014", "Rootkit"},
		{"T1002", "T1560", "Archive Collected Data"},            // revoked
		{"T1053.001", "T1053.002", "At"},                        // revoked
		{"T1215", "T1547.006", "Kernel Modules and Extensions"}, // revoked
		{"T1081", "T1552.001", "Credentials In Files"},          // revoked
		{"T1547.011", "T1647", "Plist File Modification"},       // revoked sub-technique to a technique
		{"T1043", "T1043", "Commonly Used Port"},                // deprecated: kept
	}
	for _, c := range cases {
		got, ok := Lookup(c.in)
		if !ok || got.ID != c.want || got.Name != c.name {
			t.Errorf("Lookup(%q) = %s %q, %v; want %s %q", c.in, got.ID, got.Name, ok, c.want, c.name)
		}
	}
	for _, bad := range []string{"", "T9999", "T1059.999", "T105", "T10590", "TA0002", "T1059_1", "X1059", "T1059.04", "t1059.0041"} {
		if got, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", bad, got)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	var sink audit.Technique
	if n := testing.AllocsPerRun(100, func() { sink, _ = Lookup("t1548.001") }); n != 0 {
		t.Errorf("Lookup allocates %.1f times", n)
	}
	_ = sink
}
