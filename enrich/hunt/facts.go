package hunt

import (
	"path"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Bounds on the facts taken from one event; more files or keys than this
// are not looked at.
const (
	maxExes  = 4
	maxFiles = 16
	maxKeys  = 8
)

// facts are what rules test, taken from an event once for all rules. The
// strings share memory with the event. A facts value lives on the stack of
// Enrich; filling it allocates only to join a relative PATH name to the CWD.
type facts struct {
	exec bool
	// exes are the executables: the SYSCALL exe, plus for an exec the
	// files IMA measured in the same event (a script and its interpreter);
	// for a lone INTEGRITY_RULE measurement, its files. Clean paths.
	exes     [maxExes]string
	nexes    int
	exeInfo  [maxExes]exeFacts // the facts of exes[i]
	uid      uint32
	hasUID   bool
	userName string // ENRICHED UID name, "" when the record has none

	files  [maxFiles]string
	nfiles int
	keys   [maxKeys]string
	nkeys  int

	// parentExe is the parent's clean executable path, parentBase its
	// base name, or, when the process table knows no executable for the
	// parent, its comm (parentExe then ""); both "" without a parent.
	parentExe, parentBase string
	// ancestry is ev.Ancestry (parent first); without it ([enrich.proc]
	// ancestry = 0), ancParent is ev.Parent. The ancestor conditions test
	// them as they are (see rule.matchAncestors): only the rules that get
	// that far pay for a path.
	ancestry  []*audit.Process
	ancParent *audit.Process

	blocklisted bool
	vtMalicious int64
	pkgStatus   string // ev.Package.Status, "" when none
}

// extract fills f from ev for e's rules and returns the rules among the
// first 64 that f leaves possible (see Enricher.gate). It takes the facts
// that need no lookup first (exec, verdicts, package status), then the
// executables; with at most 64 rules it stops as soon as no rule is left
// possible, and it takes the files and the parent only when a rule left
// tests them (with more, the rules past 64, which the gate does not
// cover, always get every fact). Keys, uid, user name and cwd come from the event's
// summary (computed once per event by the pool, see audit.SummaryOf). The
// ancestry is always taken: it is a slice and a pointer of the event, and
// the ancestor conditions read its paths as they match.
func (f *facts) extract(ev *audit.Event, e *Enricher) uint64 {
	sum := audit.SummaryOf(ev)
	var sc, ir *audit.Record
	for _, r := range ev.Records {
		switch r.TypeNum {
		case audit.TypeSyscall:
			if sc == nil {
				sc = r
			}
		case audit.TypeIntegrityRule:
			if _, ok := r.Get("file"); ok && ir == nil {
				ir = r
			}
		}
	}
	if sc != nil {
		f.exec = sum.Exec
	} else if ir != nil {
		// IMA measurements on their own: with a BPRM_CHECK-only policy
		// their files are the programs being executed (the exe field is
		// the image being replaced); Config.IMAAloneIsExec says whether
		// the policy is one.
		f.exec = e.imaExec
	}
	f.blocklisted = len(ev.Blocklist) > 0
	if p := ev.Package; p != nil {
		f.pkgStatus = p.Status
	}
	if vt := ev.VirusTotal; vt != nil && vt.VTVerdict != nil {
		f.vtMalicious = vt.Malicious
	}
	many := len(e.rules) > 64
	cand := e.gate.before(f)
	if cand == 0 && !many {
		return 0
	}
	if sc != nil {
		f.addExe(known(sc, "exe"), e)
	}
	if f.exec && ir != nil {
		for _, r := range ev.Records {
			if r.TypeNum == audit.TypeIntegrityRule {
				f.addExe(known(r, "file"), e)
			}
		}
	}
	if cand = e.gate.after(f, cand); cand == 0 && !many {
		return 0
	}
	for _, k := range sum.Keys {
		if f.nkeys == maxKeys {
			break
		}
		f.keys[f.nkeys] = k
		f.nkeys++
	}
	if sc != nil || ir != nil {
		if n, ok := parseUint32(sum.UID); ok {
			f.uid, f.hasUID = n, true
		}
		f.userName = sum.UName
	}
	if e.needFiles && (many || cand&e.gate.files != 0) {
		for _, r := range ev.Records {
			switch r.TypeNum {
			case audit.TypePath:
				f.addFile(known(r, "name"), sum.Cwd)
			case audit.TypeIntegrityRule:
				f.addFile(known(r, "file"), sum.Cwd)
			}
		}
	}
	if p := ev.Parent; p != nil && (many || cand&e.gate.parent != 0) {
		if p.Executable != "" {
			f.parentExe = path.Clean(p.Executable)
			f.parentBase = path.Base(f.parentExe)
		} else {
			f.parentBase = p.Comm
		}
	}
	f.ancestry, f.ancParent = ev.Ancestry, ev.Parent
	return cand
}

// exeFacts are the tests of one executable, computed once per executable
// path (see exeCache) rather than once per rule and event.
type exeFacts struct {
	base                   string
	inTemp, hidden, system bool
	// rules has bit i set when the i-th rule (i < 64) has exe conditions
	// and this executable meets them all (see rule.exeHolds).
	rules uint64
}

// known returns the decoded field, or "" when absent or "(null)".
func known(r *audit.Record, name string) string {
	v, _ := r.Get(name)
	if v == "(null)" {
		return ""
	}
	return v
}

func (f *facts) addExe(p string, e *Enricher) {
	if p == "" || p[0] != '/' || f.nexes == maxExes {
		return
	}
	p, xf := e.exes.lookup(p, e)
	for _, x := range f.exes[:f.nexes] {
		if x == p {
			return
		}
	}
	f.exes[f.nexes], f.exeInfo[f.nexes] = p, xf
	f.nexes++
}

func (f *facts) addFile(p, cwd string) {
	if p == "" || f.nfiles == maxFiles {
		return
	}
	if !strings.HasPrefix(p, "/") && cwd != "" {
		p = path.Join(cwd, p)
	} else {
		p = path.Clean(p)
	}
	f.files[f.nfiles] = p
	f.nfiles++
}

func parseUint32(s string) (uint32, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// hidden reports whether a component of p starts with '.' (other than "."
// and "..").
func hidden(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '.' || (i > 0 && p[i-1] != '/') {
			continue
		}
		end := strings.IndexByte(p[i:], '/')
		if end < 0 {
			end = len(p) - i
		}
		if c := p[i : i+end]; c != "." && c != ".." {
			return true
		}
	}
	return false
}

// dirPat is one directory of a dirSet: a clean absolute path or path.Match
// pattern with n components.
type dirPat struct {
	pat  string
	n    int
	glob bool
}

// dirSet is a set of directories; see under.
type dirSet []dirPat

func newDirSet(dirs []string) dirSet {
	d := make(dirSet, 0, len(dirs))
	for _, p := range dirs {
		n := strings.Count(p, "/")
		if p == "/" {
			n = 0
		}
		d = append(d, dirPat{pat: p, n: n, glob: strings.ContainsAny(p, `*?[\`)})
	}
	return d
}

// under reports whether the clean absolute path p lies strictly below one of
// the directories.
func (d dirSet) under(p string) bool {
	if len(p) < 2 || p[0] != '/' {
		return false
	}
	for _, dp := range d {
		if dp.n == 0 {
			return true
		}
		// The prefix of p with dp.n components ends at its (n+1)-th '/'.
		idx, seen := -1, 0
		for i := 0; i < len(p); i++ {
			if p[i] == '/' {
				if seen == dp.n {
					idx = i
					break
				}
				seen++
			}
		}
		if idx < 0 || idx == len(p)-1 {
			continue
		}
		prefix := p[:idx]
		if dp.glob {
			if ok, _ := path.Match(dp.pat, prefix); ok {
				return true
			}
		} else if prefix == dp.pat {
			return true
		}
	}
	return false
}
