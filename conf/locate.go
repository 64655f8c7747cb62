package conf

import (
	"strconv"
	"strings"
)

// pos is where a key or table header is written: 1-based line and column
// of the key (or of the header's "["), and of its value (the key's when
// there is no value, as for a header).
type pos struct {
	Line, Col       int
	ValLine, ValCol int
}

// locator maps key paths to where they are written in a TOML text.
// A path joins keys with "." and names the element of an array of
// tables by its 0-based index: "sink[1].file.path" is the path key of the
// [sink.file] table of the second [[sink]]. Keys inside inline tables are
// not recorded; they resolve to the inline table's key.
type locator map[string]pos

// locate scans data. It never fails: it is run on text the TOML decoder
// has parsed, and on text it cannot follow it records less, so that
// lookups fall back to an enclosing table.
func locate(data []byte) locator {
	loc := locator{}
	arrays := map[string]int{} // resolved path of an array of tables -> elements so far
	table := ""
	s := scanner{data: data, line: 1, col: 1}
	for !s.eof() {
		s.skipSpace(true)
		if s.eof() {
			break
		}
		line, col := s.line, s.col
		switch s.peek() {
		case '#':
			s.skipComment()
		case '[':
			s.next()
			array := s.peek() == '['
			if array {
				s.next()
			}
			keys := s.keys()
			path := resolve(keys, arrays)
			if array {
				n := arrays[path]
				arrays[path] = n + 1
				path += "[" + strconv.Itoa(n) + "]"
			}
			table = path
			// The tables the header defines implicitly ([a.b] defines
			// a) are placed at it too, when not written before.
			for i := 1; i < len(keys); i++ {
				if p := resolve(keys[:i], arrays); !has(loc, p) {
					loc[p] = pos{line, col, line, col}
				}
			}
			if !has(loc, path) {
				loc[path] = pos{line, col, line, col}
			}
			s.skipLine()
		default:
			keys := s.keys()
			if len(keys) == 0 || s.peek() != '=' {
				s.skipLine() // not a key/value line; the decoder would have refused it
				continue
			}
			s.next()
			s.skipSpace(false)
			path := table
			for _, k := range keys {
				path = join(path, k)
				if _, ok := loc[path]; !ok {
					loc[path] = pos{line, col, s.line, s.col}
				}
			}
			s.skipValue()
		}
	}
	return loc
}

// has reports whether loc places path.
func has(loc locator, path string) bool {
	_, ok := loc[path]
	return ok
}

// resolve turns header keys into a path, naming the last element of each
// array of tables they pass through.
func resolve(keys []string, arrays map[string]int) string {
	path := ""
	for i, k := range keys {
		path = join(path, k)
		if n, ok := arrays[path]; ok && i < len(keys)-1 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// at returns where path is written, or else the nearest enclosing table
// or key that is; ok is false when none is.
func (l locator) at(path string) (pos, bool) {
	for path != "" {
		if p, ok := l[path]; ok {
			return p, true
		}
		if i := strings.LastIndexByte(path, '['); i > 0 && strings.HasSuffix(path, "]") && !strings.Contains(path[i:], ".") {
			path = path[:i]
			continue
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{}, false
}

// scanner walks TOML text by bytes, counting lines and columns.
type scanner struct {
	data      []byte
	i         int
	line, col int
}

func (s *scanner) eof() bool { return s.i >= len(s.data) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.data[s.i]
}

func (s *scanner) next() {
	if s.eof() {
		return
	}
	if s.data[s.i] == '\n' {
		s.line, s.col = s.line+1, 1
	} else {
		s.col++
	}
	s.i++
}

func (s *scanner) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.data[s.i:min(len(s.data), s.i+len(p))]), p)
}

// skipSpace skips blanks, and newlines too when newlines is set.
func (s *scanner) skipSpace(newlines bool) {
	for !s.eof() {
		c := s.peek()
		if c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n') {
			s.next()
			continue
		}
		return
	}
}

func (s *scanner) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.next()
	}
}

func (s *scanner) skipLine() {
	s.skipComment()
	s.next()
}

// keys reads a dotted key (bare, "basic" or 'literal' parts) and the
// blanks after it; it stops at "=", "]" or anything else.
func (s *scanner) keys() []string {
	var keys []string
	for {
		s.skipSpace(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			keys = append(keys, s.quoted(c))
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.next()
			}
			keys = append(keys, string(s.data[start:s.i]))
		default:
			return keys
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			if s.peek() == ']' {
				s.next()
			}
			return keys
		}
		s.next()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// quoted reads a one-line quoted key and returns it unquoted.
func (s *scanner) quoted(q byte) string {
	start := s.i
	s.next()
	for !s.eof() && s.peek() != q && s.peek() != '\n' {
		if q == '"' && s.peek() == '\\' {
			s.next()
		}
		s.next()
	}
	s.next()
	raw := string(s.data[start:min(s.i, len(s.data))])
	if q == '\'' {
		return strings.Trim(raw, "'")
	}
	if u, err := strconv.Unquote(raw); err == nil {
		return u
	}
	return strings.Trim(raw, `"`)
}

// skipValue skips a value, which may span lines (multi-line strings,
// arrays, inline tables), and the rest of its line.
func (s *scanner) skipValue() {
	depth := 0
	for !s.eof() {
		switch c := s.peek(); {
		case s.hasPrefix(`"""`) || s.hasPrefix(`'''`):
			q := string(s.data[s.i : s.i+3])
			s.next()
			s.next()
			s.next()
			for !s.eof() && !s.hasPrefix(q) {
				if q[0] == '"' && s.peek() == '\\' {
					s.next()
				}
				s.next()
			}
			for !s.eof() && s.peek() == q[0] { // closing quotes, and up to two quotes of content
				s.next()
			}
		case c == '"' || c == '\'':
			s.next()
			for !s.eof() && s.peek() != c && s.peek() != '\n' {
				if c == '"' && s.peek() == '\\' {
					s.next()
				}
				s.next()
			}
			s.next()
		case c == '[' || c == '{':
			depth++
			s.next()
		case c == ']' || c == '}':
			depth--
			s.next()
		case c == '#':
			s.skipComment()
		case c == '\n':
			s.next()
			if depth <= 0 {
				return
			}
		default:
			s.next()
		}
	}
}
