package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
)

// Problem is a rule that was not loaded: where it is and why.
type Problem struct {
	File string
	Line int // 0 when the whole file is affected
	// Logsource is the rule's logsource as counted in Set.Skipped.
	Logsource string
	// Unsupported is set when the rule is well-formed but uses something
	// this engine does not evaluate (a logsource, a modifier, a field);
	// otherwise the rule is malformed.
	Unsupported bool
	Reason      string
}

func (p Problem) String() string {
	reason := p.Reason // an unsupported feature's reason starts with "unsupported: "
	if !p.Unsupported {
		reason = "invalid: " + reason
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, reason)
	}
	return fmt.Sprintf("%s: %s", p.File, reason)
}

// fileRules is what one rule file gave.
type fileRules struct {
	rules    []*Rule
	problems []Problem
	broken   bool // a malformed rule or unreadable file: reload keeps the previous rules
}

// Set is a loaded set of rules. It is immutable after Load.
type Set struct {
	byKind [numKinds][]*Rule
	idx    [numKinds]*index
	files  map[string]*fileRules
	order  []string // files in load order
	// Loaded and Skipped count rules per logsource.
	Loaded, Skipped map[string]int
	// Problems lists the rules not loaded, in file order.
	Problems []Problem
	// Warnings lists what loaded but deserves a look: a configured
	// directory without rule files, an ATT&CK technique or tactic the
	// catalog lacks (once each, at its first rule).
	Warnings []string
	stamp    string // the rule files as loaded (see stamp)
}

// Rules returns the loaded rules in file order.
func (s *Set) Rules() []*Rule {
	var out []*Rule
	for _, f := range s.order {
		out = append(out, s.files[f].rules...)
	}
	return out
}

// maxRuleFile bounds the size of one rule file.
const maxRuleFile = 1 << 20

// Load loads the rule files and directories in paths (directories are
// walked for *.yml and *.yaml files, in lexical order). A rule that
// cannot be loaded becomes a Problem and the others load; the error is
// non-nil only when a configured path cannot be read at all.
func Load(paths []string) (*Set, error) {
	return loadWith(paths, nil)
}

// loadWith is Load that keeps, for every broken file, the rules prev
// loaded from it that do not load now (hot reload, see keepPrevious).
func loadWith(paths []string, prev *Set) (*Set, error) {
	st := stamp(paths)
	files, empty, err := ruleFiles(paths)
	if err != nil {
		return nil, err
	}
	s := &Set{files: map[string]*fileRules{}, Loaded: map[string]int{}, Skipped: map[string]int{}, stamp: st}
	for _, d := range empty {
		s.Warnings = append(s.Warnings, d+": no rule file (*.yml, *.yaml) in this directory")
	}
	ids := map[string]*Rule{}
	unknown := map[string]bool{} // ATT&CK tags warned about
	for _, f := range files {
		fr := loadFile(f)
		if fr.broken && prev != nil {
			if old, ok := prev.files[f]; ok {
				fr.rules = keepPrevious(fr.rules, old.rules)
			}
		}
		kept := fr.rules[:0:0]
		for _, r := range fr.rules {
			if o, dup := ids[r.ID]; dup {
				fr.problems = append(fr.problems, Problem{File: f, Line: r.Line, Logsource: r.Logsource,
					Reason: fmt.Sprintf("duplicate id %s (also %s:%d)", r.ID, o.File, o.Line)})
				continue
			}
			ids[r.ID] = r
			kept = append(kept, r)
			for _, what := range r.unknownAttack {
				if !unknown[what] {
					unknown[what] = true
					kept := "kept with its id only (no name, no tactic)"
					if strings.HasPrefix(what, "tactic ") {
						kept = "left out of threat (kept in sigma[].tags)"
					}
					s.Warnings = append(s.Warnings, fmt.Sprintf("%s:%d: ATT&CK %s is not in the bundled catalog (ATT&CK %s): %s",
						r.File, r.Line, what, attack.Version, kept))
				}
			}
			s.byKind[r.kind] = append(s.byKind[r.kind], r)
			s.Loaded[r.Logsource]++
		}
		fr.rules = kept
		for _, p := range fr.problems {
			s.Skipped[p.Logsource]++
		}
		s.Problems = append(s.Problems, fr.problems...)
		s.files[f] = fr
		s.order = append(s.order, f)
	}
	s.index()
	return s, nil
}

// keepPrevious returns the rules of a broken file: those that load now,
// plus the previous version of each rule that does not, in the previous
// order, then the new ones. A previous rule loads now when a rule with its
// id does or, for a rule without an id (whose derived id changes with its
// title), when another rule that loads now, not the version of a previous
// rule by id, comes from its document (Rule.doc, its position among the
// file's non-empty documents). So an edit of a rule that loads, its title
// included, is applied at once even while another document of the file
// stays broken; a rule removed from a broken file stays until the file
// loads whole.
func keepPrevious(now, prev []*Rule) []*Rule {
	byID := make(map[string]*Rule, len(now))
	byDoc := make(map[int]*Rule, len(now))
	for _, r := range now {
		byID[r.ID] = r
		byDoc[r.doc] = r
	}
	next := make([]*Rule, len(prev)) // prev[i]'s version now, or nil
	used := make(map[*Rule]bool, len(now))
	for i, r := range prev {
		if n, ok := byID[r.ID]; ok {
			next[i], used[n] = n, true
		}
	}
	for i, r := range prev {
		if n, ok := byDoc[r.doc]; ok && r.derived && next[i] == nil && !used[n] {
			next[i], used[n] = n, true
		}
	}
	out := make([]*Rule, 0, len(now)+len(prev))
	for i, r := range prev {
		if next[i] != nil {
			r = next[i]
		}
		out = append(out, r)
	}
	for _, r := range now {
		if !used[r] {
			out = append(out, r)
		}
	}
	return out
}

// index builds the indexes of s.byKind.
func (s *Set) index() {
	for k := range numKinds {
		s.idx[k] = newIndex(s.byKind[k])
	}
	shareLiterals(s.idx[kindAuditd], s.idx[kindProcess])
}

// ruleFiles expands paths into rule files, each once: a configured path
// is resolved (EvalSymlinks) before a directory is walked, so that a link
// to a rule directory is followed, and a file reached twice (overlapping
// paths, or links to one file) is kept once, under the first name it was
// reached by. Entries whose name starts with ".." are skipped: Kubernetes
// mounts a ConfigMap as links name -> ..data/name, with ..data linking to
// a ..<timestamp> directory, so only the links are rule files. Links
// inside a walked directory are read as files, never followed as
// directories. empty lists the configured directories that hold no rule
// file.
func ruleFiles(paths []string) (out, empty []string, err error) {
	seen := map[string]bool{} // real paths
	add := func(name string) {
		real, err := filepath.EvalSymlinks(name)
		if err != nil {
			real = name // a dangling link: loading it reports why
		}
		if !seen[real] {
			seen[real] = true
			out = append(out, name)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("sigma: rules: %w", err)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, nil, fmt.Errorf("sigma: rules: %w", err)
		}
		if !st.IsDir() {
			add(p)
			continue
		}
		var found []string
		err = filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != real && strings.HasPrefix(d.Name(), "..") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml")) {
				rel, _ := filepath.Rel(real, path) // path is under real
				found = append(found, filepath.Join(p, rel))
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("sigma: rules: %w", err)
		}
		if len(found) == 0 {
			empty = append(empty, p)
		}
		slices.Sort(found)
		for _, f := range found {
			add(f)
		}
	}
	return out, empty, nil
}

// stamp describes the rule files under paths (name, size, mtime, inode),
// so that a change shows as a different stamp. It is taken before the
// files are read: a change during a load shows at the next comparison.
func stamp(paths []string) string {
	files, _, err := ruleFiles(paths)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s ?\n", f)
			continue
		}
		var ino uint64
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = sys.Ino
		}
		fmt.Fprintf(&b, "%s %d %d %d\n", f, fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	return b.String()
}

// loadFile reads and compiles the rules of one file (one per YAML
// document).
func loadFile(path string) *fileRules {
	fr := &fileRules{}
	data, err := readLimited(path)
	if err != nil {
		fr.broken = true
		fr.problems = append(fr.problems, Problem{File: path, Logsource: "none", Reason: err.Error()})
		return fr
	}
	rules, problems := parseRules(path, data)
	fr.rules = rules
	fr.problems = problems
	for _, p := range problems {
		fr.broken = fr.broken || !p.Unsupported
	}
	return fr
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRuleFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRuleFile {
		return nil, fmt.Errorf("larger than %d bytes", maxRuleFile)
	}
	return data, nil
}

// parseRules compiles the YAML documents of data; name is the file name
// the problems carry.
func parseRules(name string, data []byte) ([]*Rule, []Problem) {
	var rules []*Rule
	var problems []Problem
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 0; ; n++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A YAML syntax error ends the file: the decoder cannot resync.
			line := yamlLine(err)
			reason := err.Error()
			if line > 0 { // the line goes in Line, corrected
				_, rest, _ := strings.Cut(reason, fmt.Sprintf("line %d: ", line))
				reason = "yaml: " + rest
			}
			problems = append(problems, Problem{File: name, Line: syntaxErrorLine(data, line, err.Error()), Logsource: "none", Reason: reason})
			break
		}
		if emptyDoc(&doc) {
			n--
			continue // a trailing "---", or a document of comments: not counted in Rule.doc
		}
		r, ls, err := compileRule(name, &doc)
		if err != nil {
			p := Problem{File: name, Line: doc.Line, Logsource: ls, Unsupported: isUnsupported(err), Reason: err.Error()}
			var re *ruleError
			if errors.As(err, &re) && re.line > 0 {
				p.Line = re.line
			}
			problems = append(problems, p)
			continue
		}
		r.doc = n
		rules = append(rules, r)
	}
	return rules, problems
}

// emptyDoc tells whether doc holds nothing (or only null).
func emptyDoc(doc *yaml.Node) bool {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	return doc.Kind == 0 || doc.Kind == yaml.DocumentNode && len(doc.Content) == 0 ||
		doc.Kind == yaml.ScalarNode && doc.Tag == "!!null"
}

// maxLineSearch bounds the lines syntaxErrorLine tries.
const maxLineSearch = 200

// syntaxErrorLine returns the line of data (1-based) that holds the YAML
// syntax error msg that yaml.v3 reported at line reported. For a scanner
// error (an unclosed quote, a tab) that is the faulty line; for a parser
// error it is the line before the one where the construct in error starts
// (its context, 0-based), so the faulty line may be further down. The
// prefixes of data through line k = reported, reported+1, ... are parsed
// until one fails with msg itself (or maxLineSearch lines were tried); the
// line is the one after the last prefix before it that parses. A prefix
// that cuts a valid construct (a flow list or a quoted scalar over several
// lines) fails with another error, so the construct is read whole. It
// returns reported when that is 0 (unknown).
func syntaxErrorLine(data []byte, reported int, msg string) int {
	if reported <= 0 {
		return reported
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	end := 0 // bytes of data in the first k lines
	for k := range min(reported-1, len(lines)) {
		end += len(lines[k])
	}
	last := reported - 1 // the last line whose prefix parses
	for k := reported; k <= len(lines) && k < reported+maxLineSearch; k++ {
		end += len(lines[k-1])
		err := parseError(data[:end])
		if err == nil {
			last = k
		} else if err.Error() == msg {
			break
		}
	}
	return last + 1
}

// parseError returns the first error of the YAML documents of data, or
// nil when they all parse.
func parseError(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// yamlLine extracts the line number of a yaml.v3 syntax error ("yaml:
// line N: ..."), or 0.
func yamlLine(err error) int {
	var n int
	if _, e := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &n); e != nil {
		return 0
	}
	return n
}
