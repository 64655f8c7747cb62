package blocklist

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Config configures the local hash lists.
//
//	[blocklist]
//	enabled = true
//	reload_interval = "30s"
//
//	[[blocklist.lists]]
//	name   = "bazaar"
//	path   = "/var/lib/audisp-enrich/bazaar.csv"
//	kind   = "block"
//	format = "malwarebazaar"
type Config struct {
	// Enabled switches the enricher on. Default true (it does nothing
	// until lists are configured).
	Enabled bool `toml:"enabled"`
	// ReloadInterval is how often every list file is checked (inode, size,
	// mtime) and reloaded when it changed. 0 turns polling off; Reload
	// (SIGHUP) still works. Default 30s.
	ReloadInterval time.Duration `toml:"reload_interval"`
	// Lists are the block and allow lists, checked in this order.
	Lists []ListConfig `toml:"lists"`
}

// ListConfig is one hash list file.
type ListConfig struct {
	// Name identifies the list in events (blocklist[].list, the tag
	// blocklist:<name>), logs and metrics. Required, unique, made of
	// letters, digits and "._:-".
	Name string `toml:"name"`
	// Path is the list file. Required. Replace it by rename for an atomic
	// update; a file caught half-written is rejected (or, if it happens to
	// end on a line boundary, loaded short) and reloaded at the next change.
	Path string `toml:"path"`
	// Kind is "block" (default) or "allow". A block hit adds a
	// blocklist entry, the tag blocklist:<name> and severity 3; an allow
	// hit adds an allowlisted entry (the VirusTotal enricher then skips the
	// lookup).
	Kind string `toml:"kind"`
	// Format is the file format (default "plain"):
	//   - "plain": one digest per line (md5, sha1, sha256 or sha512 hex, any
	//     case, optionally prefixed "algo:"), "#" comment lines, blank
	//     lines; text after the digest and whitespace is the label, so
	//     sha256sum output ("<hex>  <file>", "<hex> *<file>") labels each
	//     digest with its file name; a leading "#" of the label is dropped.
	//   - "malwarebazaar": the abuse.ch MalwareBazaar CSV export; sha256,
	//     md5 and sha1 are indexed, labelled with the signature column.
	//   - "threatfox": the abuse.ch ThreatFox CSV export; rows whose
	//     ioc_type is sha256_hash, md5_hash or sha1_hash are indexed,
	//     labelled with malware_printable (or fk_malware); other IOC types
	//     are ignored.
	//   - "csv": generic CSV, configured with column, label_column,
	//     delimiter, comment and header.
	// A digest listed more than once keeps one label: a non-empty one if
	// it has any, and of those the one that occurs first in the file.
	Format string `toml:"format"`
	// Column (csv only, required) is the digest column: a 1-based index
	// ("3") or, with header = true, a column name (case-insensitive). It is
	// a string in TOML: column = "3". Empty and "n/a" cells are skipped.
	Column string `toml:"column"`
	// LabelColumn (csv only, optional) is the label column, same forms.
	LabelColumn string `toml:"label_column"`
	// Delimiter (csv only) is the one-character field separator. Default ",".
	Delimiter string `toml:"delimiter"`
	// Comment (csv only) is the one-character comment prefix. Default "#".
	Comment string `toml:"comment"`
	// Header (csv only) says the first row that is not a comment names the
	// columns.
	Header bool `toml:"header"`
}

// Kinds and formats.
const (
	KindBlock = "block"
	KindAllow = "allow"

	FormatPlain         = "plain"
	FormatMalwareBazaar = "malwarebazaar"
	FormatThreatFox     = "threatfox"
	FormatCSV           = "csv"
)

// DefaultConfig returns the defaults: enabled, a 30 s reload interval, no
// lists.
func DefaultConfig() Config {
	return Config{Enabled: true, ReloadInterval: 30 * time.Second}
}

// Validate reports the first problem of each list, joined. It does not
// change c; empty optional fields mean their documented defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("blocklist: reload_interval %v is negative", c.ReloadInterval))
	}
	seen := map[string]bool{}
	for i := range c.Lists {
		l := &c.Lists[i]
		if err := l.validate(); err != nil {
			errs = append(errs, fmt.Errorf("blocklist: lists[%d] (%q): %w", i, l.Name, err))
			continue
		}
		if seen[l.Name] {
			errs = append(errs, fmt.Errorf("blocklist: lists[%d]: duplicate name %q", i, l.Name))
		}
		seen[l.Name] = true
	}
	return errors.Join(errs...)
}

func (l *ListConfig) validate() error {
	if l.Name == "" {
		return errors.New("name is required")
	}
	for _, r := range l.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			return fmt.Errorf("name may hold only letters, digits and ._:- (found %q)", r)
		}
	}
	if l.Path == "" {
		return errors.New("path is required")
	}
	switch l.Kind {
	case "", KindBlock, KindAllow:
	default:
		return fmt.Errorf("kind %q: want %q or %q", l.Kind, KindBlock, KindAllow)
	}
	switch l.format() {
	case FormatPlain, FormatMalwareBazaar, FormatThreatFox:
		if l.Column != "" || l.LabelColumn != "" || l.Delimiter != "" || l.Comment != "" || l.Header {
			return fmt.Errorf("column, label_column, delimiter, comment and header apply only to format %q", FormatCSV)
		}
		return nil
	case FormatCSV:
	default:
		return fmt.Errorf("format %q: want plain, malwarebazaar, threatfox or csv", l.Format)
	}
	if l.Column == "" {
		return errors.New("format csv needs column")
	}
	if err := l.checkColumn("column", l.Column); err != nil {
		return err
	}
	if l.LabelColumn != "" {
		if err := l.checkColumn("label_column", l.LabelColumn); err != nil {
			return err
		}
	}
	for _, o := range []struct{ name, v string }{{"delimiter", l.Delimiter}, {"comment", l.Comment}} {
		if o.v == "" {
			continue
		}
		r, n := utf8.DecodeRuneInString(o.v)
		if n != len(o.v) || r == utf8.RuneError || r == '"' || r == '\r' || r == '\n' {
			return fmt.Errorf("%s %q: want one character other than a quote or line end", o.name, o.v)
		}
	}
	if l.delimiter() == l.comment() {
		return errors.New("delimiter and comment must differ")
	}
	return nil
}

func (l *ListConfig) checkColumn(opt, v string) error {
	n, err := strconv.Atoi(v)
	if err == nil {
		if n < 1 {
			return fmt.Errorf("%s %q: indexes start at 1", opt, v)
		}
		return nil
	}
	if !l.Header {
		return fmt.Errorf("%s %q is a name, which needs header = true", opt, v)
	}
	return nil
}

func (l *ListConfig) kind() string {
	if l.Kind == "" {
		return KindBlock
	}
	return l.Kind
}

func (l *ListConfig) format() string {
	if l.Format == "" {
		return FormatPlain
	}
	return l.Format
}

func (l *ListConfig) delimiter() rune {
	if l.Delimiter == "" {
		return ','
	}
	r, _ := utf8.DecodeRuneInString(l.Delimiter)
	return r
}

func (l *ListConfig) comment() rune {
	if l.Comment == "" {
		return '#'
	}
	r, _ := utf8.DecodeRuneInString(l.Comment)
	return r
}
