package audit

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Summary is the normalized view of an event that the encoders write with
// Elastic Common Schema names. Its strings point into the records.
type Summary struct {
	// Outcome is success, failure or "": from res= of the event's first
	// user-space record that has one (the result of the login,
	// authentication or command it reports), else from success= of the
	// last SYSCALL or INTEGRITY_RULE record that has one, else from res=
	// of the first integrity record (INTEGRITY_*, 1800-1807: IMA policy
	// rules, appraisal and measurement failures) that has one, else from
	// the SELinux decision of the first AVC or USER_AVC record that has
	// one (see avcOutcome).
	Outcome   string
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
	// Hashes (sha256, sha1, md5) and Sha512 hold the digest of the first
	// INTEGRITY_RULE with a hash=, lower case, when ParseDigest accepts it;
	// at most one of them is set. The hashes enricher puts the same digest
	// first in Event.Hashes.
	Hashes [3]string
	Sha512 string
	// Exec is set for a successful execve or execveat (see isExec).
	Exec    bool
	haveIMA bool
}

// RecordKeys appends the rule keys that matched record r. A CONFIG_CHANGE
// record's key is the key of the rule being changed, not a match, so it
// gives none.
func RecordKeys(r *Record, dst []string) []string {
	if r.TypeNum == 1305 {
		return dst
	}
	if k, ok := r.Get("key"); ok && !IsSentinel(k) {
		return SplitKeys(k, dst)
	}
	return dst
}

// IsSentinel reports whether v is one of the placeholder values audit uses
// for "nothing": (null), (none), ?, or empty.
func IsSentinel(v string) bool {
	return v == "" || v == "(null)" || v == "(none)" || v == "?"
}

// IsUnsetID reports whether an id field holds the unset value (-1).
func IsUnsetID(v string) bool { return v == "4294967295" || v == "-1" }

// SummaryOf returns ev.Summary when the pool set it, else a new summary of
// ev (an allocation: enrichers called outside the pool, as in tests).
func SummaryOf(ev *Event) *Summary {
	if ev.Summary != nil {
		return ev.Summary
	}
	s := new(Summary)
	Summarize(ev, s)
	return s
}

// Summarize fills s from ev's records. args is scratch space reused for
// s.Args and s.Title; pass the previous s.Args[:0] to avoid allocating.
func Summarize(ev *Event, s *Summary) {
	args, title, keys := s.Args[:0], s.Title[:0], s.Keys[:0]
	*s = Summary{}
	var execve []*Record
	var sc *Record     // the first SYSCALL record
	var userRes string // the outcome of the first user-space record's res=
	integ := false     // an integrity record without success= was seen
	avc := false       // an AVC or USER_AVC record was seen
	for _, r := range ev.Records {
		if r == nil {
			continue
		}
		switch r.TypeNum {
		case TypeSyscall, TypeIntegrityRule:
			if sc == nil && r.TypeNum == TypeSyscall {
				sc = r
			}
			// SYSCALL describes the process after execve; an integrity
			// record before it describes the caller, so SYSCALL wins.
			s.fromTask(r, r.TypeNum == TypeSyscall)
			if v, ok := r.Get("success"); ok {
				s.Outcome = outcome(v)
			} else if r.TypeNum == TypeIntegrityRule {
				integ = true
			}
			// The first integrity record of an exec is the file executed
			// (a script), later ones its interpreter: the first one wins.
			if r.TypeNum == TypeIntegrityRule && !s.haveIMA {
				if h, ok := r.Get("hash"); ok {
					s.haveIMA = true
					s.setHash(h)
					if f, ok := r.Get("file"); ok && !IsSentinel(f) {
						s.FilePath = f
					}
				}
			}
			// The name, else the number; a sentinel ("(null)", "?") is
			// neither.
			if v, ok := r.GetInterp("SYSCALL"); ok && !IsSentinel(v) {
				s.Syscall = v
			} else if v, ok := r.Get("syscall"); ok && r.TypeNum == TypeSyscall && !IsSentinel(v) {
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
			if IsUserSpace(r.TypeNum) {
				avc = avc || r.TypeNum == TypeUserAVC
				s.fromTask(r, false)
				if v, ok := r.Get("res"); ok && userRes == "" {
					userRes = outcome(v)
				}
			} else if r.TypeNum == TypeAVC {
				avc = true
			} else if isIntegrity(r.TypeNum) {
				integ = true
				if r.TypeNum == TypeIntegrityPCR || r.TypeNum == TypeIntegrityData || r.TypeNum == TypeIntegrityMetadata {
					s.fromTask(r, false)
				}
			}
		}
		keys = RecordKeys(r, keys)
	}
	// A user-space record's res= is the result of what it reports (a
	// login, an authentication, a command); a SYSCALL record in the same
	// event is the sendto that carried the message, whose success says
	// nothing about it.
	if userRes != "" {
		s.Outcome = userRes
	}
	if s.Outcome == "" && integ {
		s.Outcome = integrityRes(ev)
	}
	if s.Outcome == "" && avc {
		s.Outcome = avcOutcome(ev)
	}
	if len(execve) > 0 {
		args = execveArgs(execve, args)
	}
	s.Args, s.Title, s.Keys = args, title, keys
	s.Exec = sc != nil && isExec(sc, len(execve) > 0)
}

// isIntegrity reports whether t is an integrity (IMA, EVM) record type,
// INTEGRITY_DATA 1800 to INTEGRITY_POLICY_RULE 1807.
func isIntegrity(t uint16) bool { return t >= 1800 && t <= 1807 }

// integrityRes is the outcome of res= of ev's first integrity record that
// has one ("" when none has). Summarize asks for it only when nothing else
// gave an outcome, so that the records of other events cost no search.
func integrityRes(ev *Event) string {
	for _, r := range ev.Records {
		if r != nil && isIntegrity(r.TypeNum) {
			if v, ok := r.Get("res"); ok {
				return outcome(v)
			}
		}
	}
	return ""
}

// avcOutcome is the outcome of the SELinux decision (seresult, see
// Parser.avcDecision) of ev's first AVC or USER_AVC record that has one:
// granted is success, denied is failure when the record says the policy
// was enforced (permissive=0). A denial in permissive mode was let through
// and one without permissive= does not say: both give "". Summarize asks
// for it only when nothing else gave an outcome: a SYSCALL record's
// success= says what became of the denied call.
func avcOutcome(ev *Event) string {
	for _, r := range ev.Records {
		if r == nil || (r.TypeNum != TypeAVC && r.TypeNum != TypeUserAVC) {
			continue
		}
		switch v, _ := r.Get("seresult"); v {
		case "granted":
			return "success"
		case "denied":
			if p, _ := r.Get("permissive"); p == "0" {
				return "failure"
			}
			return ""
		}
	}
	return ""
}

// execSyscalls maps an audit arch (the SYSCALL record's arch= field) to its
// execve and execveat numbers.
var execSyscalls = map[string][2]string{
	"c000003e": {"59", "322"},  // x86_64
	"40000003": {"11", "358"},  // i386
	"c00000b7": {"221", "281"}, // aarch64
	"c00000f3": {"221", "281"}, // riscv64
	"40000028": {"11", "387"},  // arm (EABI)
}

// isExec reports whether the SYSCALL record sc is a successful execve or
// execveat. The syscall is recognised by the ENRICHED SYSCALL name, by its
// number for the record's arch (x86_64 59 and 322, i386, aarch64, riscv64,
// arm), or, for an arch not in the table, by the event having an EXECVE
// record.
func isExec(sc *Record, hasExecve bool) bool {
	if ok, _ := sc.Get("success"); ok != "yes" {
		return false
	}
	if name, ok := sc.GetInterp("SYSCALL"); ok {
		return name == "execve" || name == "execveat"
	}
	nr, _ := sc.Get("syscall")
	arch, _ := sc.Get("arch")
	if nums, ok := execSyscalls[arch]; ok {
		return nr == nums[0] || nr == nums[1]
	}
	return hasExecve
}

// fromTask takes the task fields of r: all of them when override, else
// only those not known yet.
func (s *Summary) fromTask(r *Record, override bool) {
	set := func(dst *string, name string) {
		if *dst == "" || override {
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
	setInterp := func(dst *string, name string) {
		if *dst == "" || override {
			if v, ok := r.GetInterp(name); ok {
				*dst = v
			}
		}
	}
	setInterp(&s.UName, "UID")
	setInterp(&s.EUName, "EUID")
	setInterp(&s.AUName, "AUID")
}

// setHash puts the digest h into file.hash when ParseDigest accepts it
// (sha224 and sha384 have no file.hash field and stay in hashes[] only);
// anything else stays in the record.
func (s *Summary) setHash(h string) {
	algo, hex, ok := SplitDigest(h)
	if !ok {
		return
	}
	hex = strings.ToLower(hex)
	switch algo {
	case SHA256:
		s.Hashes[0] = hex
	case SHA1:
		s.Hashes[1] = hex
	case MD5:
		s.Hashes[2] = hex
	case SHA512:
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
	// Indices are contiguous in kernel output. Hostile input may name a
	// huge index: then the arguments present are kept in index order and
	// the gaps dropped, so memory follows the input, not the index.
	if argc > 2*len(chunks)+16 {
		slices.SortStableFunc(chunks, func(a, b chunk) int { return cmp.Or(cmp.Compare(a.idx, b.idx), cmp.Compare(a.part, b.part)) })
		for i := 0; i < len(chunks); {
			j := i
			var sb strings.Builder
			for ; j < len(chunks) && chunks[j].idx == chunks[i].idx; j++ {
				sb.WriteString(chunks[j].v)
			}
			dst = append(dst, sb.String())
			i = j
		}
		return dst
	}
	parts := make([][]string, argc)
	for _, c := range chunks {
		if c.idx >= argc {
			continue
		}
		p := max(c.part, 0)
		if p > len(chunks) {
			continue
		}
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

// ProcessName is process.name: the last element of the executable path,
// else the comm value.
func ProcessName(s *Summary) string {
	if s.Exe != "" {
		for i := len(s.Exe) - 1; i >= 0; i-- {
			if s.Exe[i] == '/' {
				return s.Exe[i+1:]
			}
		}
		return s.Exe
	}
	return s.Comm
}
