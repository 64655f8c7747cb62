package audit

import (
	"strconv"
	"strings"
)

// Summary is the normalized view of an event that the encoders write with
// Elastic Common Schema names. Its strings point into the records.
type Summary struct {
	Outcome   string // success | failure | ""
	PID, PPID string
	Exe       string
	Comm      string
	Cwd       string
	Args      []string
	Title     []string // argv decoded from PROCTITLE
	UID       string
	UName     string
	EUID      string
	EUName    string
	AUID      string
	AUName    string
	FilePath  string
	Syscall   string
	Keys      []string
	Hashes    [3]string // sha256, sha1, md5 from INTEGRITY_RULE
	Sha512    string
}

// IsSentinel reports whether v is one of the placeholder values audit uses
// for "nothing": (null), (none), ?, or empty.
func IsSentinel(v string) bool {
	return v == "" || v == "(null)" || v == "(none)" || v == "?"
}

// IsUnsetID reports whether an id field holds the unset value (-1).
func IsUnsetID(v string) bool { return v == "4294967295" || v == "-1" }

// Summarize fills s from ev's records. args is scratch space reused for
// s.Args and s.Title; pass the previous s.Args[:0] to avoid allocating.
func Summarize(ev *Event, s *Summary) {
	args, title, keys := s.Args[:0], s.Title[:0], s.Keys[:0]
	*s = Summary{}
	var execve []*Record
	for _, r := range ev.Records {
		switch r.TypeNum {
		case TypeSyscall, TypeIntegrityRule:
			s.fromTask(r)
			if v, ok := r.Get("success"); ok {
				s.Outcome = outcome(v)
			}
			if r.TypeNum == TypeIntegrityRule {
				if f, ok := r.Get("file"); ok && !IsSentinel(f) {
					s.FilePath = f
				}
				if h, ok := r.Get("hash"); ok {
					s.setHash(h)
				}
			}
			if v, ok := r.GetInterp("SYSCALL"); ok {
				s.Syscall = v
			} else if v, ok := r.Get("syscall"); ok && r.TypeNum == TypeSyscall {
				s.Syscall = v
			}
		case 1309: // EXECVE
			execve = append(execve, r)
		case 1307: // CWD
			if v, ok := r.Get("cwd"); ok {
				s.Cwd = v
			}
		case 1302: // PATH
			if s.FilePath == "" {
				if v, ok := r.Get("name"); ok && !IsSentinel(v) {
					s.FilePath = v
				}
			}
		case TypeProctitle:
			if v, ok := r.Get("proctitle"); ok {
				title = SplitNUL(v, title)
			}
		default:
			if IsUserSpace(r.TypeNum) || r.TypeNum == 1804 || r.TypeNum == 1800 || r.TypeNum == 1801 {
				s.fromTask(r)
				if v, ok := r.Get("res"); ok && s.Outcome == "" {
					s.Outcome = outcome(v)
				}
			}
		}
		if k, ok := r.Get("key"); ok && !IsSentinel(k) {
			keys = SplitKeys(k, keys)
		}
	}
	if len(execve) > 0 {
		args = execveArgs(execve, args)
	}
	s.Args, s.Title, s.Keys = args, title, keys
}

func (s *Summary) fromTask(r *Record) {
	set := func(dst *string, name string) {
		if *dst == "" {
			if v, ok := r.Get(name); ok && !IsSentinel(v) {
				*dst = v
			}
		}
	}
	set(&s.PID, "pid")
	set(&s.PPID, "ppid")
	set(&s.Exe, "exe")
	set(&s.Comm, "comm")
	set(&s.UID, "uid")
	set(&s.EUID, "euid")
	set(&s.AUID, "auid")
	if s.UName == "" {
		s.UName, _ = r.GetInterp("UID")
	}
	if s.EUName == "" {
		s.EUName, _ = r.GetInterp("EUID")
	}
	if s.AUName == "" {
		s.AUName, _ = r.GetInterp("AUID")
	}
}

func (s *Summary) setHash(h string) {
	algo, hex, ok := strings.Cut(h, ":")
	if !ok {
		hex, algo = h, ""
		switch len(h) {
		case 32:
			algo = "md5"
		case 40:
			algo = "sha1"
		case 64:
			algo = "sha256"
		case 128:
			algo = "sha512"
		}
	}
	switch algo {
	case "sha256":
		s.Hashes[0] = hex
	case "sha1":
		s.Hashes[1] = hex
	case "md5":
		s.Hashes[2] = hex
	case "sha512":
		s.Sha512 = hex
	}
}

func outcome(v string) string {
	switch v {
	case "yes", "success", "1":
		return "success"
	case "no", "failed", "failure", "0":
		return "failure"
	}
	return ""
}

// SplitKeys appends the rule keys in v (several keys are joined by 0x01).
func SplitKeys(v string, dst []string) []string {
	for v != "" {
		k, rest, _ := strings.Cut(v, "\x01")
		if k != "" && !IsSentinel(k) {
			dst = append(dst, k)
		}
		v = rest
	}
	return dst
}

// SplitNUL splits a PROCTITLE value into argv.
func SplitNUL(v string, dst []string) []string {
	for v != "" {
		a, rest, _ := strings.Cut(v, "\x00")
		dst = append(dst, a)
		v = rest
	}
	return dst
}

// execveArgs rebuilds argv from the EXECVE records of one event, joining
// aN_len/aN[i] chunks and continuation records (which carry no argc=).
func execveArgs(recs []*Record, dst []string) []string {
	argc := -1
	for _, r := range recs {
		if v, ok := r.Get("argc"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				argc = n
			}
		}
	}
	simple := true
	for _, r := range recs {
		for i := range r.Fields {
			if strings.IndexByte(r.Fields[i].Name, '[') >= 0 {
				simple = false
			}
		}
	}
	if simple {
		// Fast path: aN fields in order, nothing chunked.
		for _, r := range recs {
			for i := range r.Fields {
				f := &r.Fields[i]
				if n, ok := argIndex(f.Name); ok && n == len(dst) {
					dst = append(dst, f.Value)
				}
			}
		}
		return dst
	}
	type chunk struct {
		idx, part int
		v         string
	}
	var chunks []chunk
	maxIdx := -1
	for _, r := range recs {
		for i := range r.Fields {
			f := &r.Fields[i]
			name := f.Name
			part := -1
			if j := strings.IndexByte(name, '['); j > 0 && strings.HasSuffix(name, "]") {
				p, err := strconv.Atoi(name[j+1 : len(name)-1])
				if err != nil {
					continue
				}
				part, name = p, name[:j]
			}
			n, ok := argIndex(name)
			if !ok {
				continue
			}
			chunks = append(chunks, chunk{n, part, f.Value})
			maxIdx = max(maxIdx, n)
		}
	}
	if argc < 0 || argc > maxIdx+1 {
		argc = maxIdx + 1
	}
	parts := make([][]string, argc)
	for _, c := range chunks {
		if c.idx >= argc {
			continue
		}
		p := max(c.part, 0)
		for len(parts[c.idx]) <= p {
			parts[c.idx] = append(parts[c.idx], "")
		}
		parts[c.idx][p] = c.v
	}
	for _, p := range parts {
		dst = append(dst, strings.Join(p, ""))
	}
	return dst
}

// argIndex parses an EXECVE argument name "aN".
func argIndex(name string) (int, bool) {
	if len(name) < 2 || name[0] != 'a' {
		return 0, false
	}
	n := 0
	for i := 1; i < len(name); i++ {
		c := name[i]
		if c < '0' || c > '9' || n > 1<<24 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
