package sigma

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Rule is one compiled Sigma rule. It is immutable after compilation.
type Rule struct {
	ID     string
	Title  string
	Level  string // informational, low, medium, high, critical, or ""
	Author string
	Tags   []string
	// File and Line say where the rule starts.
	File string
	Line int
	// Logsource is the logsource the rule was selected by: "auditd",
	// "process_creation", "file_event" or "network_connection".
	Logsource string

	kind kind
	// doc is the rule's position among the non-empty YAML documents of
	// its file (0-based); derived says its id is derivedID's.
	doc     int
	derived bool
	sels    []selection
	cond    *node
	// perRecord: a service: auditd rule with a keyword search matches
	// when one record satisfies its whole condition (see evalRecords);
	// recTypes are the types that record may have (nil: any).
	perRecord bool
	recTypes  []uint16
	severity  int
	techs     []audit.Technique
	hitTags   []string // "sigma:<id>", "sigma_level:<level>"
	// unknownAttack names the ATT&CK tags the catalog lacks ("technique
	// T1686", "tactic stealth").
	unknownAttack []string
}

// tacticName tells whether s, after "attack.", may be a tactic's short
// name (lower-case words joined by "-"), rather than a group or software
// id (g0032, s0002).
func tacticName(s string) bool {
	for i := range len(s) {
		if (s[i] < 'a' || s[i] > 'z') && s[i] != '-' {
			return false
		}
	}
	return s != ""
}

// addTactics adds, as a technique entry without id (tactics only), the
// tactics of the rule's tactic tags that none of its techniques has.
func (r *Rule) addTactics(tactics []audit.Tactic) {
	var extra []audit.Tactic
	for _, ta := range tactics {
		if !slices.ContainsFunc(r.techs, func(t audit.Technique) bool { return slices.Contains(t.Tactics, ta) }) &&
			!slices.Contains(extra, ta) {
			extra = append(extra, ta)
		}
	}
	if len(extra) > 0 {
		r.techs = append(r.techs, audit.Technique{Tactics: extra, Source: "sigma:" + r.ID})
	}
}

// techniqueID tells whether s, after "attack.t", is a technique id:
// four digits, and three more after a dot for a sub-technique.
func techniqueID(s string) bool {
	if len(s) != 4 && (len(s) != 8 || s[4] != '.') {
		return false
	}
	for i := range len(s) {
		if i != 4 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// kind is the kind of document a rule is evaluated on.
type kind uint8

const (
	kindAuditd kind = iota
	kindProcess
	kindFile
	kindNetwork
	numKinds
)

var kindNames = [numKinds]string{"auditd", "process_creation", "file_event", "network_connection"}

// selection is one search identifier: an OR of field maps, or a keyword
// search.
type selection struct {
	maps []fieldMap
	kw   *keywords
}

// fieldMap is an AND of field conditions. For auditd rules, a map whose
// type key lists plain record type names holds them as numbers in types
// (the key is then not among conds), and mask has their typeBit, so that
// events without such records are passed over at once.
type fieldMap struct {
	conds []fieldCond
	types []uint16
	mask  uint64
}

// keywords is a keyword search: any (or, with all, every) value found
// anywhere in the document (for service: auditd, in one record).
type keywords struct {
	vals []value
	all  bool
}

// fieldCond is one key of a field map.
type fieldCond struct {
	name   string
	fid    fieldID // for the mapped categories
	interp bool    // auditd: an ENRICHED (upper-case) field name
	vals   []value
	// hexVals is vals reading numeric comparisons as hexadecimal, for
	// a0 to a3 of a record other than EXECVE (see fieldMap.hexArgs); nil
	// for other fields and when no value compares numbers.
	hexVals []value
	all     bool // every value must match (else any)
	neq     bool // the result is negated
	exists  int8 // 1: the field must exist, -1: must not, 0: no test
	null    bool // the field must be absent or empty
	lower   bool // some value reads the lower-cased text
}

// ruleError is a problem with one rule, at a line of its file.
type ruleError struct {
	line int
	err  error
}

func (e *ruleError) Error() string { return e.err.Error() }
func (e *ruleError) Unwrap() error { return e.err }

func errAt(n *yaml.Node, format string, args ...any) error {
	return &ruleError{line: n.Line, err: fmt.Errorf(format, args...)}
}

func unsupportedAt(n *yaml.Node, format string, args ...any) error {
	return &ruleError{line: n.Line, err: unsupported(format, args...)}
}

// mapGet returns the value node of key in the mapping m, or nil.
func mapGet(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalar returns the text of a scalar node (empty for other nodes).
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// logsourceOf returns the kind doc selects and its name for counts; ok is
// false when this engine does not evaluate that logsource.
func logsourceOf(ls *yaml.Node) (k kind, name string, ok bool) {
	product := strings.ToLower(scalar(mapGet(ls, "product")))
	service := strings.ToLower(scalar(mapGet(ls, "service")))
	category := strings.ToLower(scalar(mapGet(ls, "category")))
	if product == "linux" && service == "auditd" && category == "" {
		return kindAuditd, kindNames[kindAuditd], true
	}
	if product == "linux" && service == "" {
		for k := kindProcess; k < numKinds; k++ {
			if category == kindNames[k] {
				return k, kindNames[k], true
			}
		}
	}
	var parts []string
	for _, kv := range [][2]string{{"product", product}, {"service", service}, {"category", category}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+":"+kv[1])
		}
	}
	if len(parts) == 0 {
		return 0, "none", false
	}
	return 0, strings.Join(parts, " "), false
}

// compileRule compiles one YAML document. The returned logsource name is
// set even when the rule is not compiled, for the counts.
func compileRule(file string, doc *yaml.Node) (*Rule, string, error) {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, "none", errAt(doc, "a rule must be a YAML mapping")
	}
	for _, k := range []string{"action", "correlation", "filter"} {
		if n := mapGet(doc, k); n != nil {
			return nil, "none", unsupportedAt(n, "%s documents (rule collections, correlations, filters)", k)
		}
	}
	ls := mapGet(doc, "logsource")
	if ls == nil || ls.Kind != yaml.MappingNode {
		return nil, "none", errAt(doc, "no logsource mapping")
	}
	k, lsName, ok := logsourceOf(ls)
	if !ok {
		return nil, lsName, unsupportedAt(ls, "logsource %s (only product linux with service auditd or category process_creation, file_event, network_connection)", lsName)
	}
	r := &Rule{File: file, Line: doc.Line, Logsource: lsName, kind: k}
	r.ID = scalar(mapGet(doc, "id"))
	r.Title = scalar(mapGet(doc, "title"))
	if r.Title == "" {
		return nil, lsName, errAt(doc, "no title")
	}
	if r.ID == "" {
		r.ID, r.derived = derivedID(file, r.Title), true
	}
	r.Author = scalar(mapGet(doc, "author"))
	if lv := mapGet(doc, "level"); lv != nil {
		r.Level = strings.ToLower(scalar(lv))
		sev, ok := audit.SigmaSeverity(r.Level)
		if !ok {
			return nil, lsName, errAt(lv, "level %q is not one of informational, low, medium, high, critical", lv.Value)
		}
		r.severity = sev
	}
	var tactics []audit.Tactic // of the tactic tags
	if tags := mapGet(doc, "tags"); tags != nil {
		if tags.Kind != yaml.SequenceNode {
			return nil, lsName, errAt(tags, "tags must be a list")
		}
		for _, t := range tags.Content {
			tag := strings.ToLower(scalar(t))
			if tag == "" {
				return nil, lsName, errAt(t, "empty tag")
			}
			r.Tags = append(r.Tags, tag)
			if id, ok := strings.CutPrefix(tag, "attack.t"); ok && techniqueID(id) {
				tech, known := attack.Lookup("T" + id)
				if !known {
					// From a newer ATT&CK release than the catalog:
					// kept by its id alone, and warned about at load.
					tech = audit.Technique{ID: "T" + id}
					tech.ParentID, _, _ = strings.Cut(tech.ID, ".")
					if tech.ParentID == tech.ID {
						tech.ParentID = ""
					}
					r.unknownAttack = append(r.unknownAttack, "technique "+tech.ID)
				}
				tech.Source = "sigma:" + r.ID
				r.techs = append(r.techs, tech)
			} else if name, ok := strings.CutPrefix(tag, "attack."); ok && tacticName(name) {
				if ta, ok := attack.TacticByName(name); ok {
					tactics = append(tactics, ta)
				} else {
					r.unknownAttack = append(r.unknownAttack, "tactic "+name)
				}
			}
		}
	}
	r.addTactics(tactics)
	r.hitTags = []string{"sigma:" + r.ID}
	if r.Level != "" {
		r.hitTags = append(r.hitTags, "sigma_level:"+r.Level)
	}
	det := mapGet(doc, "detection")
	if det == nil || det.Kind != yaml.MappingNode {
		return nil, lsName, errAt(doc, "no detection mapping")
	}
	if err := r.compileDetection(det); err != nil {
		return nil, lsName, err
	}
	if r.kind == kindAuditd {
		r.perRecord = slices.ContainsFunc(r.sels, func(s selection) bool { return s.kw != nil })
		if r.perRecord {
			r.recTypes = recordTypeNeeds.rule(r)
		}
	}
	return r, lsName, nil
}

// derivedID is the id of a rule without one (the specification makes id
// optional): "noid-" and the first 16 hex digits of the SHA-256 of the
// file name, a NUL and the title. It stays the same across reloads and
// edits of the detection; renaming the file or the title changes it.
func derivedID(file, title string) string {
	sum := sha256.Sum256([]byte(file + "\x00" + title))
	return "noid-" + hex.EncodeToString(sum[:8])
}

// compileDetection compiles the search identifiers and the condition.
func (r *Rule) compileDetection(det *yaml.Node) error {
	var names []string
	var cond *yaml.Node
	for i := 0; i+1 < len(det.Content); i += 2 {
		key, val := det.Content[i], det.Content[i+1]
		switch key.Value {
		case "condition":
			cond = val
			continue
		case "timeframe":
			return unsupportedAt(key, "timeframe")
		}
		if len(names) == maxSelections {
			return unsupportedAt(key, "more than %d search identifiers", maxSelections)
		}
		sel, err := r.compileSelection(val)
		if err != nil {
			return err
		}
		names = append(names, key.Value)
		r.sels = append(r.sels, sel)
	}
	if cond == nil {
		return errAt(det, "no condition")
	}
	var conds []string
	switch cond.Kind {
	case yaml.ScalarNode:
		conds = []string{cond.Value}
	case yaml.SequenceNode:
		for _, c := range cond.Content {
			if c.Kind != yaml.ScalarNode {
				return errAt(c, "condition list entries must be strings")
			}
			conds = append(conds, c.Value)
		}
	default:
		return errAt(cond, "condition must be a string or a list of strings")
	}
	or := &node{kind: nodeOr}
	for _, c := range conds {
		n, err := parseCondition(c, names)
		if err != nil {
			return &ruleError{line: cond.Line, err: err}
		}
		or.kids = append(or.kids, n)
	}
	r.cond = or
	if len(or.kids) == 1 {
		r.cond = or.kids[0]
	}
	return nil
}

// compileSelection compiles the value of one search identifier.
func (r *Rule) compileSelection(n *yaml.Node) (selection, error) {
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) >= 2 && strings.HasPrefix(n.Content[0].Value, "|") {
			kw, err := r.compileKeywords(n)
			return selection{kw: kw}, err
		}
		m, err := r.compileMap(n)
		return selection{maps: []fieldMap{m}}, err
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return selection{}, errAt(n, "empty search identifier")
		}
		if n.Content[0].Kind == yaml.MappingNode {
			var sel selection
			for _, c := range n.Content {
				if c.Kind != yaml.MappingNode {
					return sel, errAt(c, "a list of maps holds a non-map entry")
				}
				m, err := r.compileMap(c)
				if err != nil {
					return sel, err
				}
				sel.maps = append(sel.maps, m)
			}
			return sel, nil
		}
		kw, err := r.compileKeywords(n)
		return selection{kw: kw}, err
	case yaml.ScalarNode:
		kw, err := r.compileKeywords(n)
		return selection{kw: kw}, err
	}
	return selection{}, errAt(n, "a search identifier must be a map, a list or a string")
}

// compileKeywords compiles a keyword list, or the map {'|mods': list}.
func (r *Rule) compileKeywords(n *yaml.Node) (*keywords, error) {
	var mods []string
	list := n
	if n.Kind == yaml.MappingNode {
		if len(n.Content) != 2 {
			return nil, errAt(n, "a keyword map must have exactly one key")
		}
		mods = strings.Split(n.Content[0].Value, "|")[1:]
		list = n.Content[1]
	}
	raw, null, err := scalars(list)
	if err != nil {
		return nil, err
	}
	if null {
		return nil, errAt(list, "null is not a keyword")
	}
	m, err := parseModifiers(mods)
	if err != nil {
		return nil, &ruleError{line: n.Line, err: err}
	}
	if m.exists || m.neq {
		return nil, errAt(n, "exists and neq need a field")
	}
	if m.wrap == "" && !m.re && !m.cidr && m.cmp == 0 {
		// A keyword is found anywhere in a value.
		m.wrap = "contains"
	}
	vals, err := compileValues(m, raw)
	if err != nil {
		return nil, &ruleError{line: list.Line, err: err}
	}
	if m.all && numValues(vals) > 64 {
		return nil, unsupportedAt(list, "more than 64 keywords with all")
	}
	return &keywords{vals: vals, all: m.all}, nil
}

// scalars returns the scalar texts of n (a scalar or a list of them) and
// whether n is the null value.
func scalars(n *yaml.Node) ([]string, bool, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, true, nil
		}
		return []string{n.Value}, false, nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return nil, false, errAt(n, "empty value list")
		}
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, false, errAt(c, "a value list may hold only strings and numbers")
			}
			if c.Tag == "!!null" {
				return nil, false, errAt(c, "null cannot be part of a value list")
			}
			out = append(out, c.Value)
		}
		return out, false, nil
	}
	return nil, false, errAt(n, "a value must be a string, a number or a list of them")
}

// compileMap compiles a field map (an AND of field conditions).
func (r *Rule) compileMap(n *yaml.Node) (fieldMap, error) {
	if len(n.Content) == 0 {
		return fieldMap{}, errAt(n, "empty map")
	}
	var conds []fieldCond
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		parts := strings.Split(key.Value, "|")
		c := fieldCond{name: parts[0]}
		if c.name == "" {
			return fieldMap{}, errAt(key, "a keyword search must be its own search identifier")
		}
		if r.kind == kindAuditd {
			c.interp = c.name != strings.ToLower(c.name)
		} else {
			fid, ok := lookupField(r.kind, c.name)
			if !ok {
				return fieldMap{}, unsupportedAt(key, "field %s is not mapped for %s (see docs/sigma.md)", c.name, kindNames[r.kind])
			}
			c.fid = fid
		}
		m, err := parseModifiers(parts[1:])
		if err != nil {
			return fieldMap{}, &ruleError{line: key.Line, err: err}
		}
		c.all, c.neq = m.all, m.neq
		raw, null, err := scalars(val)
		if err != nil {
			return fieldMap{}, err
		}
		switch {
		case m.exists:
			if len(raw) != 1 || (raw[0] != "true" && raw[0] != "false") {
				return fieldMap{}, errAt(val, "exists needs true or false")
			}
			c.exists = 1
			if raw[0] == "false" {
				c.exists = -1
			}
		case null:
			if len(parts) > 1 {
				return fieldMap{}, errAt(val, "null takes no modifiers")
			}
			c.null = true
		default:
			if c.vals, err = compileValues(m, raw); err != nil {
				return fieldMap{}, &ruleError{line: val.Line, err: err}
			}
			for i := range c.vals {
				c.lower = c.lower || c.vals[i].needsLower()
			}
		}
		conds = append(conds, c)
	}
	fm := fieldMap{conds: conds}
	if r.kind == kindAuditd {
		fm.takeTypes()
		fm.hexArgs()
	}
	return fm, nil
}

// hexArgs gives the conditions on a0 to a3 with numeric comparisons (lt,
// lte, gt, gte) the variant hexVals that reads the field as hexadecimal,
// as SYSCALL records write a syscall's arguments. Which one a record uses
// is decided per record as it is matched: EXECVE records, whose aN are the
// command's arguments as written, read them as decimal (see
// fieldCond.test).
func (m *fieldMap) hexArgs() {
	for i := range m.conds {
		c := &m.conds[i]
		if len(c.name) != 2 || c.name[0] != 'a' || c.name[1] < '0' || c.name[1] > '3' ||
			!slices.ContainsFunc(c.vals, func(v value) bool { return v.op >= opLT }) {
			continue
		}
		c.hexVals = slices.Clone(c.vals)
		for j := range c.hexVals {
			c.hexVals[j].hex = c.hexVals[j].op >= opLT
		}
	}
}

// takeTypes moves a type key of plain, known record type names into
// m.types. Any other type key stays a condition, tested first.
func (m *fieldMap) takeTypes() {
	i := slices.IndexFunc(m.conds, func(c fieldCond) bool { return c.name == "type" })
	if i < 0 {
		return
	}
	c := m.conds[i]
	var types []uint16
	for _, v := range c.vals {
		n := audit.TypeNumber(strings.ToUpper(v.s))
		if v.op != opEq || v.cased || n == 0 {
			types = nil
			break
		}
		types = append(types, n)
	}
	if types == nil || c.neq || c.all || c.exists != 0 || c.null {
		m.conds[0], m.conds[i] = m.conds[i], m.conds[0]
		return
	}
	m.types = types
	for _, t := range types {
		m.mask |= typeBit(t)
	}
	m.conds = slices.Delete(m.conds, i, i+1)
}

// typeBit is the bit of record type t in type masks. Types share bits,
// so a mask only rules out: records are still checked against types.
func typeBit(t uint16) uint64 { return 1 << (t % 64) }

// isUnsupported reports whether err says a rule uses a feature the engine
// does not implement (rather than being malformed).
func isUnsupported(err error) bool { return errors.Is(err, errUnsupported) }
