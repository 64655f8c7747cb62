package hunt

import (
	"cmp"
	"errors"
	"fmt"
	"os/user"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// RuleError is an invalid rule. File and Line are set when the rule came
// from a file (Line 0 when it could not be placed); Index is the rule's
// position (0-based) in its file or list, -1 for errors outside any rule.
// An inline rule (no File) is named by its key in the config file,
// "hunt: rule[INDEX] ("NAME"): ", so that conf places the error.
type RuleError struct {
	File  string
	Line  int
	Index int
	Rule  string
	Err   error
}

func (e *RuleError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	default:
		// An inline rule: named by its key in the config file.
		fmt.Fprintf(&b, "hunt: rule[%d]", e.Index)
		if e.Rule != "" {
			fmt.Fprintf(&b, " (%q)", e.Rule)
		}
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
		return b.String()
	}
	switch {
	case e.Rule != "":
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	case e.Index >= 0:
		fmt.Fprintf(&b, "rule #%d: ", e.Index+1)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *RuleError) Unwrap() error { return e.Err }

// matcher matches a string against exact values, path.Match globs and
// regexes. The zero matcher is empty and matches nothing.
type matcher struct {
	exact    map[string]struct{}
	prefixes []string // globs "lit*" with no other meta character
	globs    []string
	res      []*regexp.Regexp
}

func (m *matcher) empty() bool {
	return len(m.exact) == 0 && len(m.prefixes) == 0 && len(m.globs) == 0 && len(m.res) == 0
}

func (m *matcher) match(s string) bool {
	if _, ok := m.exact[s]; ok {
		return true
	}
	for _, p := range m.prefixes {
		// As in path.Match, '*' does not match '/'.
		if strings.HasPrefix(s, p) && strings.IndexByte(s[len(p):], '/') < 0 {
			return true
		}
	}
	for _, g := range m.globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	for _, re := range m.res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// addGlobs adds path.Match patterns; ones without meta characters become
// exact values.
func (m *matcher) addGlobs(key string, pats []string, noSlash bool) error {
	for _, p := range pats {
		switch {
		case p == "":
			return fmt.Errorf("%s: empty pattern", key)
		case noSlash && strings.Contains(p, "/"):
			return fmt.Errorf("%s: %q: a name cannot contain '/'", key, p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%s: %q: %w", key, p, err)
		}
		lit, star := strings.CutSuffix(p, "*")
		switch {
		case !strings.ContainsAny(p, `*?[\`):
			if m.exact == nil {
				m.exact = make(map[string]struct{})
			}
			m.exact[p] = struct{}{}
		case star && !strings.ContainsAny(lit, `*?[\`):
			m.prefixes = append(m.prefixes, lit)
		default:
			m.globs = append(m.globs, p)
		}
	}
	return nil
}

func (m *matcher) addRegexes(key string, pats []string) error {
	for _, p := range pats {
		if p == "" {
			return fmt.Errorf("%s: empty regex", key)
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", key, p, err)
		}
		m.res = append(m.res, re)
	}
	return nil
}

// uidRange is an inclusive range of uids.
type uidRange struct{ lo, hi uint32 }

// account matches the process's user by name or numeric uid.
type account struct {
	names    map[string]struct{}
	nameUIDs []uint32   // the local uids of names
	uids     []uidRange // from the uids option
}

func (a *account) empty() bool { return len(a.names) == 0 && len(a.uids) == 0 }

// match compares names with the ENRICHED user name when the record has one;
// only without it does it fall back to the local uids of the names (another
// host's uids may differ, its names are what counts).
func (a *account) match(f *facts) bool {
	if f.userName != "" {
		if _, ok := a.names[f.userName]; ok {
			return true
		}
	} else if f.hasUID {
		for _, u := range a.nameUIDs {
			if f.uid == u {
				return true
			}
		}
	}
	if f.hasUID {
		for _, r := range a.uids {
			if f.uid >= r.lo && f.uid <= r.hi {
				return true
			}
		}
	}
	return false
}

// rule is a compiled RuleConfig.
type rule struct {
	name     string
	severity int
	tag      string   // "hunt:<name>"
	tags     []string // the rule's own tags, shared read-only with HuntHits
	tech     *audit.Technique

	exec                               bool
	exe, exeNot, exeName, file, parent matcher
	parentName                         matcher
	ancestor, ancestorName             matcher
	ancDepth                           int // ancestor_depth; 0: no ancestor condition
	key                                matcher
	exeInTemp, exeHidden, exeOutside   bool
	fileInTemp, fileHidden             bool
	acct                               account
	blocklisted                        bool
	vtMin                              int64
	pkgStatus                          []string // package_status
	needFiles                          bool     // a file condition is set
	hasExeConds                        bool     // an exe condition is set
}

// packageStatuses are the values of audit.PackageResult.Status.
var packageStatuses = []string{packages.StatusPackage, packages.StatusModified, packages.StatusRelocated,
	packages.StatusUnowned, packages.StatusUnindexed}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// compileRule checks rc and builds its matchers. lookupUser resolves a user
// name to its local uid (nil skips resolution).
func compileRule(rc *RuleConfig, lookupUser func(string) (uint32, bool)) (*rule, error) {
	if rc.Name == "" {
		return nil, errors.New("name is required")
	}
	if !validName.MatchString(rc.Name) {
		return nil, fmt.Errorf("name %q: only letters, digits, '_', '-' and '.'", rc.Name)
	}
	r := &rule{name: rc.Name, tag: "hunt:" + rc.Name, exec: rc.Exec,
		exeInTemp: rc.ExeInTemp, exeHidden: rc.ExeHidden, exeOutside: rc.ExeOutsideSystemDirs,
		fileInTemp: rc.FileInTemp, fileHidden: rc.FileHidden, blocklisted: rc.Blocklisted}
	var ok bool
	if r.severity, ok = severities[rc.Severity]; !ok {
		return nil, fmt.Errorf("severity %q: want low, medium, high or critical", rc.Severity)
	}
	if rc.Technique != "" {
		t, ok := attack.Lookup(rc.Technique)
		if !ok {
			return nil, fmt.Errorf("technique %q: not an ATT&CK technique id in the catalog", rc.Technique)
		}
		t.Source = r.tag
		r.tech = &t
	}
	for _, t := range rc.Tags {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			return nil, fmt.Errorf("tags: %q: empty or contains white space", t)
		}
	}
	r.tags = append([]string(nil), rc.Tags...)
	r.tags = r.tags[:len(r.tags):len(r.tags)]

	steps := []error{
		r.exe.addGlobs("exe", rc.Exe, false),
		r.exe.addRegexes("exe_regex", rc.ExeRegex),
		r.exeNot.addGlobs("exe_not", rc.ExeNot, false),
		r.exeNot.addRegexes("exe_not_regex", rc.ExeNotRegex),
		r.exeName.addGlobs("exe_name", rc.ExeName, true),
		r.file.addGlobs("file", rc.File, false),
		r.file.addRegexes("file_regex", rc.FileRegex),
		r.parent.addGlobs("parent_exe", rc.ParentExe, false),
		r.parentName.addGlobs("parent_name", rc.ParentName, true),
		r.ancestor.addGlobs("ancestor_exe", rc.AncestorExe, false),
		r.ancestorName.addGlobs("ancestor_name", rc.AncestorName, true),
		r.key.addGlobs("key", rc.Key, false),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, err
	}
	if err := r.compileAccount(rc, lookupUser); err != nil {
		return nil, err
	}
	if err := r.compileAncestorDepth(rc); err != nil {
		return nil, err
	}
	if rc.VTMaliciousMin < 0 {
		return nil, fmt.Errorf("vt_malicious_min %d: must be 0 or more", rc.VTMaliciousMin)
	}
	r.vtMin = int64(rc.VTMaliciousMin)
	for _, st := range rc.PackageStatus {
		if !slices.Contains(packageStatuses, st) {
			return nil, fmt.Errorf("package_status: %q: want one of %s", st, strings.Join(packageStatuses, ", "))
		}
	}
	r.pkgStatus = slices.Clone(rc.PackageStatus)
	r.needFiles = !r.file.empty() || r.fileInTemp || r.fileHidden
	r.hasExeConds = !r.exe.empty() || !r.exeNot.empty() || !r.exeName.empty() || r.exeInTemp ||
		r.exeHidden || r.exeOutside
	if !r.exec && r.exe.empty() && r.exeNot.empty() && r.exeName.empty() && !r.exeInTemp &&
		!r.exeHidden && !r.exeOutside && !r.needFiles && r.acct.empty() && r.parent.empty() &&
		r.parentName.empty() && r.ancDepth == 0 && r.key.empty() && !r.blocklisted && r.vtMin == 0 && len(r.pkgStatus) == 0 {
		return nil, errors.New("no condition: a rule must set at least one")
	}
	return r, nil
}

func (r *rule) compileAccount(rc *RuleConfig, lookupUser func(string) (uint32, bool)) error {
	for _, n := range rc.Users {
		if n == "" || strings.ContainsAny(n, " \t\r\n:/") {
			return fmt.Errorf("users: %q: not a user name", n)
		}
		if r.acct.names == nil {
			r.acct.names = make(map[string]struct{})
		}
		r.acct.names[n] = struct{}{}
		if lookupUser != nil {
			if uid, ok := lookupUser(n); ok {
				r.acct.nameUIDs = append(r.acct.nameUIDs, uid)
			}
		}
	}
	for _, s := range rc.UIDs {
		ur, err := parseUIDRange(s)
		if err != nil {
			return fmt.Errorf("uids: %q: %w", s, err)
		}
		r.acct.uids = append(r.acct.uids, ur)
	}
	return nil
}

// defaultAncestorDepth is ancestor_depth when left out (at most
// audit.MaxAncestry, the most ancestors an event carries).
const defaultAncestorDepth = 2

// compileAncestorDepth sets r.ancDepth from ancestor_depth when r has an
// ancestor condition; a depth without one, or out of range, is an error.
func (r *rule) compileAncestorDepth(rc *RuleConfig) error {
	has := !r.ancestor.empty() || !r.ancestorName.empty()
	switch {
	case rc.AncestorDepth < 0 || rc.AncestorDepth > audit.MaxAncestry:
		return fmt.Errorf("ancestor_depth %d: want 1..%d", rc.AncestorDepth, audit.MaxAncestry)
	case rc.AncestorDepth != 0 && !has:
		return fmt.Errorf("ancestor_depth %d: needs ancestor_exe or ancestor_name", rc.AncestorDepth)
	case has:
		r.ancDepth = cmp.Or(rc.AncestorDepth, defaultAncestorDepth)
	}
	return nil
}

func parseUIDRange(s string) (uidRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 32)
	if err != nil {
		return uidRange{}, errors.New(`want "N" or "N-M"`)
	}
	if !isRange {
		return uidRange{uint32(a), uint32(a)}, nil
	}
	b, err := strconv.ParseUint(hi, 10, 32)
	if err != nil || b < a {
		return uidRange{}, errors.New(`want "N" or "N-M" with N <= M`)
	}
	return uidRange{uint32(a), uint32(b)}, nil
}

// localUID resolves a user name on this host (os/user: /etc/passwd or NSS).
func localUID(name string) (uint32, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(n), err == nil
}
