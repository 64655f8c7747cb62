package gelf

import (
	"fmt"
	"unicode/utf8"
)

// maxDepth bounds the nesting of objects and arrays in a document.
const maxDepth = 64

// Kinds of scalar the parser returns.
const (
	kindString = iota
	kindNumber
	kindBool
	kindNull
	kindJoined // not a parser kind: a joined array (string body, unquoted)
)

// parser scans one JSON text (RFC 8259) in place. Scalars come back as
// their exact bytes in s, so that the encoder copies strings and numbers
// without decoding them; every token is validated (string escapes, UTF-8,
// no control bytes, number grammar), so what is copied is valid JSON.
type parser struct {
	s []byte
	i int
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("JSON at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *parser) skipWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// str scans a string token and returns it with its quotes.
func (p *parser) str() ([]byte, error) {
	if p.peek() != '"' {
		return nil, p.errf("string expected")
	}
	start := p.i
	p.i++
	for p.i < len(p.s) {
		for p.i < len(p.s) && plainByte[p.s[p.i]] {
			p.i++
		}
		if p.i == len(p.s) {
			break
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start:p.i], nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, p.errf("unterminated escape")
			}
			switch p.s[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.s) {
					return nil, p.errf("short \\u escape")
				}
				for _, h := range p.s[p.i+2 : p.i+6] {
					if !isHex(h) {
						return nil, p.errf("bad \\u escape")
					}
				}
				p.i += 6
			default:
				return nil, p.errf("bad escape \\%c", p.s[p.i+1])
			}
		case c < 0x20:
			return nil, p.errf("control byte in a string")
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, n := utf8.DecodeRune(p.s[p.i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, p.errf("invalid UTF-8 in a string")
			}
			p.i += n
		}
	}
	return nil, p.errf("unterminated string")
}

// plainByte marks the bytes a JSON string holds as they are: printable
// ASCII but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scalar scans a string, number, true, false or null.
func (p *parser) scalar() ([]byte, int, error) {
	switch c := p.peek(); {
	case c == '"':
		v, err := p.str()
		return v, kindString, err
	case c == '-' || isDigit(c):
		return p.number()
	}
	for _, w := range [...]struct {
		lit  string
		kind int
	}{{"true", kindBool}, {"false", kindBool}, {"null", kindNull}} {
		if len(p.s)-p.i >= len(w.lit) && string(p.s[p.i:p.i+len(w.lit)]) == w.lit {
			p.i += len(w.lit)
			return p.s[p.i-len(w.lit) : p.i], w.kind, nil
		}
	}
	return nil, 0, p.errf("value expected")
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() ([]byte, int, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	switch {
	case p.peek() == '0':
		p.i++
	case isDigit(p.peek()):
		for isDigit(p.peek()) {
			p.i++
		}
	default:
		return nil, 0, p.errf("digit expected")
	}
	if p.peek() == '.' {
		p.i++
		if !isDigit(p.peek()) {
			return nil, 0, p.errf("digit expected after '.'")
		}
		for isDigit(p.peek()) {
			p.i++
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !isDigit(p.peek()) {
			return nil, 0, p.errf("digit expected in exponent")
		}
		for isDigit(p.peek()) {
			p.i++
		}
	}
	return p.s[start:p.i], kindNumber, nil
}

// skipValue scans over any value (depth counts enclosing containers).
func (p *parser) skipValue(depth int) error {
	if depth > maxDepth {
		return p.errf("nested too deeply")
	}
	p.skipWS()
	switch p.peek() {
	case '{', '[':
		closer := byte('}')
		if p.peek() == '[' {
			closer = ']'
		}
		obj := closer == '}'
		p.i++
		p.skipWS()
		if p.peek() == closer {
			p.i++
			return nil
		}
		for {
			p.skipWS()
			if obj {
				if _, err := p.str(); err != nil {
					return err
				}
				p.skipWS()
				if p.peek() != ':' {
					return p.errf("':' expected")
				}
				p.i++
			}
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			p.skipWS()
			switch p.peek() {
			case ',':
				p.i++
			case closer:
				p.i++
				return nil
			default:
				return p.errf("',' or '%c' expected", closer)
			}
		}
	}
	_, _, err := p.scalar()
	return err
}

// hasNested reports whether the array at p holds an object or an array.
// It leaves p at the end of the array.
func (p *parser) hasNested() (bool, error) {
	p.i++ // [
	p.skipWS()
	if p.peek() == ']' {
		p.i++
		return false, nil
	}
	nested := false
	for {
		p.skipWS()
		if c := p.peek(); c == '{' || c == '[' {
			nested = true
		}
		if err := p.skipValue(1); err != nil {
			return false, err
		}
		p.skipWS()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nested, nil
		default:
			return false, p.errf("',' or ']' expected")
		}
	}
}
