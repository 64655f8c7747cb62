package kafka

import (
	"errors"
	"fmt"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// maxTopicLen is Kafka's limit on topic names.
const maxTopicLen = 249

// topicTemplate is a parsed topic setting: literal parts and placeholders.
// It is immutable and safe for concurrent use.
type topicTemplate struct {
	parts  []topicPart
	static string // the whole topic when there is no placeholder
}

type topicPart struct {
	literal string
	field   string // "node", "type" or "kind"; empty for a literal
}

// parseTopic parses a topic setting such as "audit.{node}.{kind}".
func parseTopic(s string) (*topicTemplate, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	t := &topicTemplate{}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			t.parts = append(t.parts, topicPart{literal: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, topicPart{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: unclosed '{'", s)
		}
		name := rest[open+1 : open+end]
		switch name {
		case "node", "type", "kind":
		default:
			return nil, fmt.Errorf("%q: unknown placeholder {%s} (want {node}, {type} or {kind})", s, name)
		}
		t.parts = append(t.parts, topicPart{field: name})
		rest = rest[open+end+1:]
	}
	static := true
	for _, p := range t.parts {
		if p.field != "" {
			static = false
			continue
		}
		if i := strings.IndexFunc(p.literal, func(r rune) bool { return !legalTopicByte(r) }); i >= 0 {
			return nil, fmt.Errorf("%q: %q is not allowed in a topic name (only A-Z a-z 0-9 . _ -)", s, p.literal[i:i+1])
		}
	}
	if static {
		if len(s) > maxTopicLen || s == "." || s == ".." {
			return nil, fmt.Errorf("%q is not a legal topic name", s)
		}
		t.static = s
	}
	return t, nil
}

// topic returns the topic for a message with meta m.
func (t *topicTemplate) topic(m *sinks.Meta) string {
	if t.static != "" {
		return t.static
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.literal)
		case "node":
			writeSanitised(&b, m.Node)
		case "type":
			first := ""
			if len(m.Types) > 0 {
				first = m.Types[0]
			}
			writeSanitised(&b, first)
		case "kind":
			writeSanitised(&b, m.Kind)
		}
	}
	s := b.String()
	if len(s) > maxTopicLen {
		s = s[:maxTopicLen]
	}
	if s == "." || s == ".." {
		s = strings.Repeat("_", len(s))
	}
	return s
}

// writeSanitised writes v with every byte that is illegal in a topic name
// replaced by '_', or "unknown" when v is empty.
func writeSanitised(b *strings.Builder, v string) {
	if v == "" {
		b.WriteString("unknown")
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if legalTopicByte(rune(c)) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
}

func legalTopicByte(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}
