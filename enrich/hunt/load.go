package hunt

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// rulesFile is the layout of a rules file: [[rule]] tables only.
type rulesFile struct {
	Rule []RuleConfig `toml:"rule"`
}

// ParseRules decodes and checks a rules file (name is used in errors).
// Decoding is strict: unknown keys are errors. Every error is a *RuleError
// naming file:line and, when known, the rule.
func ParseRules(name string, data []byte) ([]RuleConfig, error) {
	rf, _, err := decodeRules(name, data)
	if err != nil {
		return nil, err
	}
	if _, err := compileFile(name, data, rf.Rule, nil); err != nil {
		return nil, err
	}
	return rf.Rule, nil
}

// parseRules decodes and compiles a rules file.
func parseRules(name string, data []byte, lookupUser func(string) (uint32, bool)) ([]*rule, error) {
	rf, _, err := decodeRules(name, data)
	if err != nil {
		return nil, err
	}
	return compileFile(name, data, rf.Rule, lookupUser)
}

func compileFile(name string, data []byte, rcs []RuleConfig, lookupUser func(string) (uint32, bool)) ([]*rule, error) {
	lines := headerLines(data, len(rcs))
	rs := make([]*rule, 0, len(rcs))
	for i := range rcs {
		r, err := compileRule(&rcs[i], lookupUser)
		if err != nil {
			return nil, &RuleError{File: name, Line: lines[i], Index: i, Rule: rcs[i].Name, Err: err}
		}
		rs = append(rs, r)
	}
	if err := checkUnique(rs, name); err != nil {
		var re *RuleError
		if errors.As(err, &re) {
			re.Line = lines[re.Index]
		}
		return nil, err
	}
	return rs, nil
}

// decodeRules decodes data strictly.
func decodeRules(name string, data []byte) (rulesFile, toml.MetaData, error) {
	var rf rulesFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&rf)
	if err != nil {
		re := &RuleError{File: name, Index: -1, Err: errors.New(strings.TrimPrefix(err.Error(), "toml: "))}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			re.Line, re.Err = pe.Position.Line, errors.New(pe.Message)
		} else if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
			// Type mismatches come as plain errors with the line in the text.
			re.Line, _ = strconv.Atoi(m[1])
			re.Err = fmt.Errorf("%s: %s", strings.TrimPrefix(m[2], "rule."), m[3])
		}
		if re.Line > 0 {
			re.Index = ruleAt(data, re.Line)
			// The failed decode filled fields in map order; decode only the
			// names to tell which rule it was.
			var names struct{ Rule []struct{ Name string } }
			if _, err := toml.Decode(string(data), &names); err == nil && re.Index >= 0 && re.Index < len(names.Rule) {
				re.Rule = names.Rule[re.Index].Name
			}
		}
		return rf, md, re
	}
	und := md.Undecoded()
	if len(und) == 0 {
		return rf, md, nil
	}
	bad := und[0]
	// Attribute the key to its [[rule]]: md.Keys() lists a "rule" key for
	// every [[rule]] header, in document order.
	unknown := make(map[string]bool, len(und))
	for _, k := range und {
		unknown[k.String()] = true
	}
	idx := -1
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "rule" {
			idx++
			continue
		}
		if unknown[k.String()] {
			bad = k
			break
		}
	}
	re := &RuleError{File: name, Index: idx, Err: fmt.Errorf("unknown key %q", bad.String())}
	if len(bad) < 2 || bad[0] != "rule" {
		re.Index = -1
		re.Err = fmt.Errorf("unknown key %q (a rules file holds [[rule]] tables only)", bad.String())
		re.Line = keyLine(data, 1, 0, bad[0])
		return rf, md, re
	}
	if idx >= 0 && idx < len(rf.Rule) {
		re.Rule = rf.Rule[idx].Name
	}
	lines := headerLines(data, len(rf.Rule))
	if idx >= 0 && idx < len(lines) && lines[idx] > 0 {
		end := 0
		if idx+1 < len(lines) {
			end = lines[idx+1]
		}
		re.Line = keyLine(data, lines[idx], end, bad[1])
		if re.Line == 0 {
			re.Line = lines[idx]
		}
	}
	return rf, md, re
}

// decodeErrRE matches the decoder's type mismatch errors.
var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// headers returns the 1-based line of each [[rule]] header.
func headers(data []byte) []int {
	var lines []int
	for i, l := range bytes.Split(data, []byte{'\n'}) {
		s := string(l)
		if j := strings.IndexByte(s, '#'); j >= 0 {
			s = s[:j]
		}
		s = strings.Join(strings.Fields(s), "")
		if s == "[[rule]]" {
			lines = append(lines, i+1)
		}
	}
	return lines
}

// headerLines returns the line of each of the n rules' [[rule]] header, or
// all zeros when the text does not have exactly n of them (rules written as
// an inline array, or a header inside a multi-line string).
func headerLines(data []byte, n int) []int {
	lines := headers(data)
	if len(lines) != n {
		return make([]int, n)
	}
	return lines
}

// ruleAt returns the index of the [[rule]] table holding line, or -1.
func ruleAt(data []byte, line int) int {
	idx := -1
	for i, h := range headers(data) {
		if h <= line {
			idx = i
		}
	}
	return idx
}

// keyLine returns the first line in [from, to) (to 0: end of text) that
// assigns key (key = …, key.x = …) or opens a table of it ([key…), or 0.
func keyLine(data []byte, from, to int, key string) int {
	for i, l := range bytes.Split(data, []byte{'\n'}) {
		n := i + 1
		if n < from || (to > 0 && n >= to) {
			continue
		}
		s := strings.TrimSpace(string(l))
		s = strings.TrimLeft(s, "[")
		s = strings.TrimPrefix(s, "rule.")
		s = strings.Trim(s, `"'`)
		if rest, ok := strings.CutPrefix(s, key); ok {
			rest = strings.TrimLeft(rest, `"' `+"\t")
			if rest == "" || rest[0] == '=' || rest[0] == '.' || rest[0] == ']' {
				return n
			}
		}
	}
	return 0
}
