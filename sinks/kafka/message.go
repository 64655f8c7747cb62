package kafka

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// builder turns sink messages into producer messages. It is immutable and
// safe for concurrent use.
type builder struct {
	topic    *topicTemplate
	key      string
	headers  bool
	maxBytes int
}

// Header names.
const (
	hdrNode       = "node"
	hdrTypes      = "types"
	hdrKeys       = "keys"
	hdrTechniques = "techniques"
	hdrSeverity   = "severity"
	hdrKind       = "kind"
	hdrTruncated  = "truncated"
)

// Sizes sarama counts for a v2 record (ProducerMessage.ByteSize).
const (
	recordOverhead = 5*binary.MaxVarintLen32 + binary.MaxVarintLen64 + 1
	headerOverhead = 2 * binary.MaxVarintLen32
)

// minValueBudget is the least room a truncated variant needs; when the
// headers leave less, the descriptive headers are dropped.
const minValueBudget = 512

// maxIDLen bounds the event id copied into keys and truncated variants.
const maxIDLen = 256

// build returns the producer message for m, and whether its value had to be
// replaced by the truncated variant because it would exceed maxBytes.
// headLimit, when positive, further caps the bytes of the original kept in
// a truncated variant; forceTruncate truncates even a message that fits
// (used when a broker rejects a message as too large).
func (b *builder) build(m *sinks.Message, forceTruncate bool, headLimit int) (*sarama.ProducerMessage, bool) {
	pm := &sarama.ProducerMessage{Topic: b.topic.topic(&m.Meta)}
	var key []byte
	switch b.key {
	case KeyNode:
		if m.Meta.Node != "" {
			key = []byte(m.Meta.Node)
		}
	case KeyEventID:
		if id := eventID(m.Value); id != "" {
			key = []byte(id)
		}
	}
	if key != nil {
		pm.Key = sarama.ByteEncoder(key)
	}
	if b.headers {
		pm.Headers = metaHeaders(&m.Meta)
	}
	overhead := recordOverhead + len(key)
	for _, h := range pm.Headers {
		overhead += len(h.Key) + len(h.Value) + headerOverhead
	}
	if !forceTruncate && overhead+len(m.Value) <= b.maxBytes {
		pm.Value = sarama.ByteEncoder(m.Value)
		return pm, false
	}
	truncHdr := sarama.RecordHeader{Key: []byte(hdrTruncated), Value: []byte("true")}
	overhead += len(truncHdr.Key) + len(truncHdr.Value) + headerOverhead
	budget := b.maxBytes - overhead
	if budget < minValueBudget {
		// The descriptive headers (or the key) leave too little room: keep
		// only the flag.
		pm.Headers = nil
		budget = b.maxBytes - recordOverhead - len(truncHdr.Key) - len(truncHdr.Value) - headerOverhead - len(key)
		if budget < minValueBudget {
			pm.Key = nil
			budget += len(key)
		}
	}
	if headLimit > 0 {
		budget = min(budget, headLimit)
	}
	pm.Headers = append(pm.Headers, truncHdr)
	pm.Value = sarama.ByteEncoder(truncatedValue(m.Value, m.Meta.Kind, budget))
	return pm, true
}

// metaHeaders returns the descriptive headers of meta, skipping empty ones.
func metaHeaders(m *sinks.Meta) []sarama.RecordHeader {
	hs := make([]sarama.RecordHeader, 0, 6)
	add := func(k, v string) {
		if v != "" {
			hs = append(hs, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
	}
	add(hdrNode, m.Node)
	add(hdrTypes, strings.Join(m.Types, ","))
	add(hdrKeys, strings.Join(m.Keys, ","))
	add(hdrTechniques, strings.Join(m.Techniques, ","))
	if m.Severity > 0 {
		add(hdrSeverity, strconv.Itoa(m.Severity))
	}
	add(hdrKind, m.Kind)
	return hs
}

// truncatedValue returns a JSON document of at most budget bytes (budget
// >= minValueBudget/2) that stands for value:
//
//	{"truncated":true,"kind":K,"event":{"id":ID},"original_bytes":N,"head":"..."}
//
// kind and event are left out when unknown (an id whose escaped form does
// not fit is cut on a character boundary); head holds as many leading bytes
// of value as fit (as a JSON string, cut on a character boundary), and only
// when value is a JSON document.
func truncatedValue(value []byte, kind string, budget int) []byte {
	out := make([]byte, 0, budget)
	out = append(out, `{"truncated":true`...)
	if kind != "" && len(kind) <= maxIDLen {
		out = append(out, `,"kind":`...)
		out = appendJSONString(out, []byte(kind), -1)
	}
	if id := eventID(value); id != "" {
		// The id's escaped form may be six times its bytes (invalid
		// UTF-8, control bytes): it is cut to leave room for the rest,
		// `},"original_bytes":N}` with N of at most 20 digits.
		const idOpen, rest = `,"event":{"id":`, len(`"},"original_bytes":`) + 20 + len(`}`)
		if room := budget - len(out) - len(idOpen) - len(`"`) - rest; room > 0 {
			out = append(out, idOpen...)
			out = appendJSONString(out, []byte(id), room)
			out = append(out, '}')
		}
	}
	out = append(out, `,"original_bytes":`...)
	out = strconv.AppendInt(out, int64(len(value)), 10)
	if len(value) > 0 && value[0] == '{' {
		const headOpen, closing = `,"head":`, len(`"}`)
		if room := budget - len(out) - len(headOpen) - closing - 1; room > 0 {
			out = append(out, headOpen...)
			out = appendJSONString(out, value, room)
		}
	}
	return append(out, '}')
}

// appendJSONString appends s as a JSON string. With limit >= 0 it stops
// before the escaped content would exceed limit bytes. Invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst, s []byte, limit int) []byte {
	dst = append(dst, '"')
	used := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		var esc []byte
		switch {
		case r == utf8.RuneError && size == 1:
			esc = []byte(`\ufffd`)
		case r == '"':
			esc = []byte(`\"`)
		case r == '\\':
			esc = []byte(`\\`)
		case r == '\n':
			esc = []byte(`\n`)
		case r == '\r':
			esc = []byte(`\r`)
		case r == '\t':
			esc = []byte(`\t`)
		case r < 0x20:
			esc = []byte(`\u00`)
			esc = append(esc, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			esc = s[:size]
		}
		if limit >= 0 && used+len(esc) > limit {
			break
		}
		dst = append(dst, esc...)
		used += len(esc)
		s = s[size:]
	}
	return append(dst, '"')
}

// eventIDMarker starts the event id in the JSON documents of the encoder
// (docs: output model). A raw quote cannot occur inside a JSON string, so the
// marker only matches document structure.
var eventIDMarker = []byte(`"event":{"id":"`)

// eventIDWindow bounds the search: the encoder writes "event" near the top.
const eventIDWindow = 4096

// eventID returns the event id of a JSON document, read cheaply from its
// first bytes without decoding it, or "" when there is none (not JSON, no
// id, or an id longer than maxIDLen).
func eventID(value []byte) string {
	head := value[:min(len(value), eventIDWindow)]
	i := bytes.Index(head, eventIDMarker)
	if i < 0 {
		return ""
	}
	start := i + len(eventIDMarker) - 1 // at the opening quote
	rest := value[start+1:]
	escaped := false
	for j := 0; j < len(rest) && j <= 2*maxIDLen; j++ {
		switch rest[j] {
		case '\\':
			j++
			escaped = true
		case '"':
			raw := value[start : start+1+j+1]
			id := string(raw[1 : len(raw)-1])
			if escaped {
				if err := json.Unmarshal(raw, &id); err != nil {
					return ""
				}
			}
			if len(id) > maxIDLen {
				return ""
			}
			return id
		}
	}
	return ""
}
