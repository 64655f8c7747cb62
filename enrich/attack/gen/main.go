// Command gen builds enrich/attack/catalog_gen.go, the embedded ATT&CK
// Enterprise catalog, from the reduced MITRE data files in ../shared/attack
// (enterprise-techniques.tsv, enterprise-tactics.tsv and SOURCE.md).
//
// It is run from the package directory by `go generate`:
//
//	go run ./gen [-src ../../../shared/attack] [-out catalog_gen.go]
//
// The output is deterministic: the same inputs give the same bytes, so a test
// can check that the committed file is current. Every input problem is an
// error naming the file and line; nothing is written then.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	src := flag.String("src", "../../../shared/attack", "directory holding enterprise-techniques.tsv, enterprise-tactics.tsv and SOURCE.md")
	out := flag.String("out", "catalog_gen.go", "Go file to write")
	flag.Parse()
	b, err := Generate(*src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// Generate reads the data files in dir and returns the gofmt'ed source of
// catalog_gen.go.
func Generate(dir string) ([]byte, error) {
	meta, err := readSource(filepath.Join(dir, "SOURCE.md"))
	if err != nil {
		return nil, err
	}
	tacticsPath := filepath.Join(dir, "enterprise-tactics.tsv")
	techPath := filepath.Join(dir, "enterprise-techniques.tsv")
	for _, p := range []string{tacticsPath, techPath} {
		if err := meta.checkHash(p); err != nil {
			return nil, err
		}
	}
	tactics, err := readTactics(tacticsPath)
	if err != nil {
		return nil, err
	}
	techs, err := readTechniques(techPath, tactics)
	if err != nil {
		return nil, err
	}
	return render(meta, tactics, techs)
}

// ---------------------------------------------------------------------------
// SOURCE.md

type sourceMeta struct {
	path    string
	version string
	commit  string
	notice  []string          // the license section, line by line
	hashes  map[string]string // file name → sha256 hex listed in SOURCE.md
	sums    map[string]string // file name → sha256 hex computed
}

var (
	reVersion = regexp.MustCompile(`ATT&CK version: \*\*([0-9]+\.[0-9]+)\*\*`)
	reCommit  = regexp.MustCompile("Commit: `([0-9a-f]{40})`")
	reHash    = regexp.MustCompile("`([a-z-]+\\.tsv)`: `([0-9a-f]{64})`")
)

func readSource(path string) (*sourceMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &sourceMeta{path: path, hashes: map[string]string{}, sums: map[string]string{}}
	text := string(b)
	v := reVersion.FindStringSubmatch(text)
	if v == nil {
		return nil, fmt.Errorf("%s: no \"ATT&CK version: **N.N**\" line", path)
	}
	m.version = v[1]
	if c := reCommit.FindStringSubmatch(text); c != nil {
		m.commit = c[1]
	}
	for _, h := range reHash.FindAllStringSubmatch(text, -1) {
		m.hashes[h[1]] = h[2]
	}
	in := false
	for line := range strings.SplitSeq(text, "\n") {
		switch {
		case strings.HasPrefix(line, "## License"):
			in = true
			continue
		case in && strings.HasPrefix(line, "## "):
			in = false
		}
		if in {
			m.notice = append(m.notice, strings.TrimRight(line, " \r"))
		}
	}
	for len(m.notice) > 0 && m.notice[0] == "" {
		m.notice = m.notice[1:]
	}
	for len(m.notice) > 0 && m.notice[len(m.notice)-1] == "" {
		m.notice = m.notice[:len(m.notice)-1]
	}
	if len(m.notice) == 0 || !strings.Contains(strings.Join(m.notice, "\n"), "The MITRE Corporation") {
		return nil, fmt.Errorf("%s: no \"## License\" section with MITRE's notice", path)
	}
	return m, nil
}

// checkHash computes the SHA-256 of path and compares it with the one
// SOURCE.md lists for it, if any.
func (m *sourceMeta) checkHash(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	got := hex.EncodeToString(sum[:])
	name := filepath.Base(path)
	m.sums[name] = got
	if want, ok := m.hashes[name]; ok && want != got {
		return fmt.Errorf("%s: sha256 %s, but %s lists %s", path, got, m.path, want)
	}
	return nil
}

// ---------------------------------------------------------------------------
// TSV files

type tactic struct {
	id, short, name string
	order           int
}

type technique struct {
	id, name   string
	tactics    []int // indices into the tactic list
	deprecated bool
	revoked    bool
	revokedBy  string // direct replacement from the data
	final      string // replacement after following revoked-by chains
}

// lines calls fn for every data line (not blank, not starting with '#') of
// path with its 1-based line number and its tab-separated fields.
func lines(path string, fn func(n int, f []string) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, strings.Split(line, "\t")); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", path, n, err)
	}
	return nil
}

var (
	reTacticID = regexp.MustCompile(`^TA[0-9]{4}$`)
	reTechID   = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
	reShort    = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
)

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("boolean %q is neither true nor false", s)
}

func readTactics(path string) ([]tactic, error) {
	var ts []tactic
	err := lines(path, func(_ int, f []string) error {
		if len(f) != 5 {
			return fmt.Errorf("%d fields, want 5", len(f))
		}
		order, err := strconv.Atoi(f[0])
		if err != nil {
			return fmt.Errorf("matrix_order %q: %w", f[0], err)
		}
		if !reTacticID.MatchString(f[1]) {
			return fmt.Errorf("bad tactic id %q", f[1])
		}
		if !reShort.MatchString(f[2]) {
			return fmt.Errorf("bad tactic shortname %q", f[2])
		}
		if f[3] == "" {
			return errors.New("empty tactic name")
		}
		if _, err := parseBool(f[4]); err != nil {
			return err
		}
		for _, t := range ts {
			if t.id == f[1] || t.short == f[2] {
				return fmt.Errorf("tactic %s (%s) listed twice", f[1], f[2])
			}
		}
		ts = append(ts, tactic{id: f[1], short: f[2], name: f[3], order: order})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 || len(ts) > 16 {
		return nil, fmt.Errorf("%s: %d tactics; the catalog holds 1 to 16", path, len(ts))
	}
	slices.SortStableFunc(ts, func(a, b tactic) int { return a.order - b.order })
	return ts, nil
}

func readTechniques(path string, tactics []tactic) ([]technique, error) {
	var out []technique
	seen := map[string]int{}
	err := lines(path, func(n int, f []string) error {
		if len(f) != 11 {
			return fmt.Errorf("%d fields, want 11", len(f))
		}
		t := technique{id: f[0], name: f[1], revokedBy: f[7]}
		if !reTechID.MatchString(t.id) {
			return fmt.Errorf("bad technique id %q", t.id)
		}
		if prev, ok := seen[t.id]; ok {
			return fmt.Errorf("%s already listed on line %d", t.id, prev)
		}
		seen[t.id] = n
		if t.name == "" {
			return fmt.Errorf("%s has no name", t.id)
		}
		sub, err := parseBool(f[3])
		if err != nil {
			return err
		}
		if sub != strings.Contains(t.id, ".") {
			return fmt.Errorf("%s: is_subtechnique=%v does not match the id", t.id, sub)
		}
		wantParent := ""
		if sub {
			wantParent = t.id[:5]
		}
		if f[4] != wantParent {
			return fmt.Errorf("%s: parent_id %q, want %q", t.id, f[4], wantParent)
		}
		if t.deprecated, err = parseBool(f[5]); err != nil {
			return err
		}
		if t.revoked, err = parseBool(f[6]); err != nil {
			return err
		}
		if t.revoked != (t.revokedBy != "") {
			return fmt.Errorf("%s: revoked=%v but revoked_by=%q", t.id, t.revoked, t.revokedBy)
		}
		if t.revokedBy != "" && !reTechID.MatchString(t.revokedBy) {
			return fmt.Errorf("%s: bad revoked_by %q", t.id, t.revokedBy)
		}
		for s := range strings.SplitSeq(f[2], ",") {
			if s == "" {
				continue
			}
			i := slices.IndexFunc(tactics, func(x tactic) bool { return x.short == s })
			if i < 0 {
				return fmt.Errorf("%s: unknown tactic %q", t.id, s)
			}
			if !slices.Contains(t.tactics, i) {
				t.tactics = append(t.tactics, i)
			}
		}
		slices.Sort(t.tactics)
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	byID := map[string]int{}
	for i, t := range out {
		byID[t.id] = i
	}
	for i := range out {
		t := &out[i]
		if sub := strings.Contains(t.id, "."); sub {
			if _, ok := byID[t.id[:5]]; !ok {
				return nil, fmt.Errorf("%s:%d: parent %s of %s is not listed", path, seen[t.id], t.id[:5], t.id)
			}
		}
		if !t.revoked {
			continue
		}
		// Follow revoked-by until an unrevoked technique; a loop is an error.
		cur, hops := t.revokedBy, 0
		for {
			j, ok := byID[cur]
			if !ok {
				return nil, fmt.Errorf("%s:%d: %s is revoked by %s, which is not listed", path, seen[t.id], t.id, cur)
			}
			if !out[j].revoked {
				break
			}
			if hops++; hops > len(out) {
				return nil, fmt.Errorf("%s:%d: revoked-by chain from %s loops", path, seen[t.id], t.id)
			}
			cur = out[j].revokedBy
		}
		t.final = cur
	}
	slices.SortFunc(out, func(a, b technique) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

// ---------------------------------------------------------------------------
// Output

// constName turns a tactic shortname into a Go constant name:
// "command-and-control" → "tacCommandAndControl".
func constName(short string) string {
	var b strings.Builder
	b.WriteString("tac")
	for w := range strings.SplitSeq(short, "-") {
		b.WriteString(strings.ToUpper(w[:1]))
		b.WriteString(w[1:])
	}
	return b.String()
}

func render(m *sourceMeta, tactics []tactic, techs []technique) ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	p("// Code generated by \"go run ./gen\" from ../shared/attack; DO NOT EDIT.\n//\n")
	p("// MITRE ATT&CK Enterprise %s", m.version)
	if m.commit != "" {
		p(", mitre/cti commit %s", m.commit)
	}
	p(".\n")
	for _, name := range []string{"enterprise-techniques.tsv", "enterprise-tactics.tsv"} {
		p("// %s sha256 %s\n", name, m.sums[name])
	}
	p("//\n")
	for _, line := range m.notice {
		if line == "" {
			p("//\n")
		} else {
			p("// %s\n", line)
		}
	}
	p("\npackage attack\n\n")
	p("// Version is the ATT&CK Enterprise release the catalog was generated from.\n")
	p("const Version = %q\n\n", m.version)

	p("// Tactics in matrix order; bit i of a tacticSet is tactics[i].\n")
	p("const (\n")
	for i, t := range tactics {
		if i == 0 {
			p("\t%s tacticSet = 1 << iota\n", constName(t.short))
		} else {
			p("\t%s\n", constName(t.short))
		}
	}
	p(")\n\n")
	p("var tactics = [...]tacticRow{\n")
	for _, t := range tactics {
		p("\t{%q, %q},\n", t.id, t.name)
	}
	p("}\n\n")

	nSub, nRev, nDep := 0, 0, 0
	for _, t := range techs {
		if strings.Contains(t.id, ".") {
			nSub++
		}
		if t.revoked {
			nRev++
		}
		if t.deprecated {
			nDep++
		}
	}
	p("// catalog holds every Enterprise technique (%d: %d sub-techniques, %d revoked,\n", len(techs), nSub, nRev)
	p("// %d deprecated) sorted by id. replacedBy is the final replacement of a\n", nDep)
	p("// revoked technique, with chains of revoked-by already followed.\n")
	p("var catalog = [...]row{\n")
	for _, t := range techs {
		set := "0"
		if len(t.tactics) > 0 {
			names := make([]string, len(t.tactics))
			for i, ti := range t.tactics {
				names[i] = constName(tactics[ti].short)
			}
			set = strings.Join(names, " | ")
		}
		fl := "0"
		switch {
		case t.revoked && t.deprecated:
			fl = "revoked | deprecated"
		case t.revoked:
			fl = "revoked"
		case t.deprecated:
			fl = "deprecated"
		}
		p("\t{%q, %q, %s, %s, %q},\n", t.id, t.name, set, fl, t.final)
	}
	p("}\n")
	return format.Source(b.Bytes())
}
