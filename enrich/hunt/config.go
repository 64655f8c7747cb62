package hunt

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Config configures the hunting rules ([hunt] in the config file).
type Config struct {
	// Enabled switches the enricher on (default true). The runtime reads it;
	// New builds the enricher either way.
	Enabled bool `toml:"enabled"`
	// UseDefaults loads the built-in rules (default true; see defaults.toml).
	UseDefaults bool `toml:"use_defaults"`
	// Rules are rules written inline in the config file as [[hunt.rule]]
	// tables. A rule named like a built-in rule replaces it.
	Rules []RuleConfig `toml:"rule"`
	// RulesFile is a TOML file of [[rule]] tables, loaded after the inline
	// rules (default none). Unknown keys are errors; errors name file:line.
	// A rule named like a built-in or inline rule replaces it.
	RulesFile string `toml:"rules_file"`
	// Disable lists names of rules to drop (built-in or user). A name that
	// matches no rule is an error.
	Disable []string `toml:"disable"`
	// TempDirs are the world-writable directories of exe_in_temp and
	// file_in_temp (default /tmp, /var/tmp, /dev/shm). A path is in one when
	// it lies anywhere below it.
	TempDirs []string `toml:"temp_dirs"`
	// SystemDirs are the directories of exe_outside_system_dirs (default
	// /bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin,
	// /usr/lib*, /lib*). Each may be a path.Match pattern; a path is in one
	// when it lies anywhere below a directory the pattern matches.
	SystemDirs []string `toml:"system_dirs"`
	// IMAAloneIsExec makes an event that has IMA measurements
	// (INTEGRITY_RULE) but no SYSCALL record an execution of the measured
	// files (default true). That holds only when the IMA audit policy
	// covers executions alone (func=BPRM_CHECK); with a policy that also
	// measures reads or mappings (ima_policy=tcb, FILE_CHECK, MMAP_CHECK) a
	// root "less /tmp/x" would count as running /tmp/x: set it false there,
	// and exec rules match SYSCALL executions only.
	IMAAloneIsExec bool `toml:"ima_alone_is_exec"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Enabled:        true,
		UseDefaults:    true,
		TempDirs:       []string{"/tmp", "/var/tmp", "/dev/shm"},
		IMAAloneIsExec: true,
		SystemDirs: []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin",
			"/usr/local/sbin", "/usr/lib*", "/lib*"},
	}
}

// Validate checks everything that does not need rules_file: the
// directory lists, every inline rule (a *RuleError naming rule[i] and the
// key), that inline names are unique, and that each name in disable names
// a built-in rule (with use_defaults) or an inline one; when rules_file is
// set, a name found in neither is left to New, which reads that file.
// Every problem is returned, joined.
func (c *Config) Validate() error {
	var errs []error
	for _, l := range []struct {
		key  string
		dirs []string
	}{{"temp_dirs", c.TempDirs}, {"system_dirs", c.SystemDirs}} {
		for _, d := range l.dirs {
			if err := checkDir(d); err != nil {
				errs = append(errs, fmt.Errorf("hunt: %s: %q: %w", l.key, d, err))
			}
		}
	}
	_, err := compileInline(c.Rules, nil)
	errs = append(errs, err)
	known := map[string]bool{}
	if c.UseDefaults {
		for _, r := range builtinRules() {
			known[r.name] = true
		}
	}
	for _, rc := range c.Rules {
		known[rc.Name] = true
	}
	for _, n := range c.Disable {
		switch {
		case n == "":
			errs = append(errs, errors.New("hunt: disable: empty rule name"))
		case !known[n] && c.RulesFile == "":
			errs = append(errs, fmt.Errorf("hunt: disable: no rule named %q", n))
		}
	}
	return errors.Join(errs...)
}

// compileInline compiles the inline rules and checks that their names are
// unique. It returns the rules that compiled and every error, joined.
func compileInline(rcs []RuleConfig, lookupUser func(string) (uint32, bool)) ([]*rule, error) {
	var errs []error
	rs := make([]*rule, 0, len(rcs))
	for i := range rcs {
		r, err := compileRule(&rcs[i], lookupUser)
		if err != nil {
			errs = append(errs, &RuleError{Index: i, Rule: rcs[i].Name, Err: err})
			continue
		}
		rs = append(rs, r)
	}
	if len(errs) == 0 {
		errs = append(errs, checkUnique(rs, ""))
	}
	return rs, errors.Join(errs...)
}

func checkDir(d string) error {
	switch {
	case !strings.HasPrefix(d, "/"):
		return errors.New("not an absolute path")
	case d != "/" && strings.HasSuffix(d, "/"):
		return errors.New("trailing slash")
	case path.Clean(d) != d:
		return errors.New("not a clean path")
	}
	_, err := path.Match(d, "")
	return err
}

// RuleConfig is one hunting rule. A rule matches an event when every
// condition it sets holds; a condition that lists several values holds when
// any of them matches. Boolean conditions set to false (or left out) are no
// condition at all. A rule must set at least one condition.
//
// Globs use path.Match: "*" does not cross "/"; use a regex for any depth.
// Regexes use Go's RE2 syntax and are not anchored unless written so.
//
// The facts a rule sees come from the event's records. The executables are
// the exe of the SYSCALL record (the new image for an exec) and, for an
// exec, the files IMA measured in the same event (a script and its
// interpreter); for INTEGRITY_RULE records without SYSCALL (IMA
// measurements), their files. The exe conditions hold when one executable
// meets all of them. The user is the SYSCALL (or INTEGRITY_RULE) uid, by
// its ENRICHED name when the record has one. Files are PATH names (relative
// ones joined to the CWD) and INTEGRITY_RULE files. Keys are the records'
// key fields. The parent and the ancestors are the ones the proc enricher
// found.
type RuleConfig struct {
	// Name identifies the rule; it becomes the tag "hunt:<name>". Letters,
	// digits, '_', '-' and '.'; required.
	Name string `toml:"name"`
	// Description says what the rule hunts for (documentation only).
	Description string `toml:"description"`
	// Severity is low, medium, high or critical (1..4); required.
	Severity string `toml:"severity"`
	// Technique is an optional ATT&CK technique id such as "T1059.004"; it
	// must be in the embedded catalog.
	Technique string `toml:"technique"`
	// Tags are added to the event besides "hunt:<name>".
	Tags []string `toml:"tags"`

	// Exec requires the event to be a successful execve/execveat, or an
	// INTEGRITY_RULE measurement without SYSCALL.
	Exec bool `toml:"exec"`
	// Exe and ExeRegex: the executable path matches a glob or a regex
	// (one condition). All exe_* conditions test the same executable.
	Exe      []string `toml:"exe"`
	ExeRegex []string `toml:"exe_regex"`
	// ExeNot and ExeNotRegex: the executable path matches none of these
	// globs and regexes (one condition; useful to carve out exceptions).
	ExeNot      []string `toml:"exe_not"`
	ExeNotRegex []string `toml:"exe_not_regex"`
	// ExeName: the executable's base name matches one of these globs.
	ExeName []string `toml:"exe_name"`
	// ExeInTemp: the executable lies below one of Config.TempDirs.
	ExeInTemp bool `toml:"exe_in_temp"`
	// ExeHidden: a component of the executable path starts with '.'.
	ExeHidden bool `toml:"exe_hidden"`
	// ExeOutsideSystemDirs: the executable lies below none of
	// Config.SystemDirs (an unknown executable is not outside).
	ExeOutsideSystemDirs bool `toml:"exe_outside_system_dirs"`
	// File and FileRegex: some file path of the event matches a glob or a
	// regex (one condition).
	File      []string `toml:"file"`
	FileRegex []string `toml:"file_regex"`
	// FileInTemp: some file path lies below one of Config.TempDirs.
	FileInTemp bool `toml:"file_in_temp"`
	// FileHidden: some file path has a component starting with '.'.
	FileHidden bool `toml:"file_hidden"`
	// Users and UIDs: the process's user is one of these names, or its
	// numeric uid is in one of these ranges ("33", "1-999") (one condition).
	// Names are compared with the ENRICHED name when the record has one,
	// else with the uid the name has on this host.
	Users []string `toml:"users"`
	UIDs  []string `toml:"uids"`
	// ParentExe and ParentName: the parent's executable path matches one of
	// these globs, or its base name one of these name globs (one condition).
	ParentExe  []string `toml:"parent_exe"`
	ParentName []string `toml:"parent_name"`
	// AncestorExe and AncestorName: one of the first AncestorDepth
	// ancestors (the parent is the first, its parent the second, ...) has
	// an executable path that matches one of these globs, or a base name
	// that matches one of these name globs (one condition). It is a
	// condition of its own: with parent_* as well, both must hold, each on
	// its own ancestor or on the same one (the parent). The ancestors are
	// those the proc enricher found (ev.Ancestry, [enrich.proc] ancestry
	// long at most, stopping at the first unknown one); with ancestry = 0
	// the parent alone. An ancestor whose executable is unknown matches
	// nothing, but counts towards the depth; a shorter chain is tested as
	// far as it goes, and an event without a known parent never matches.
	AncestorExe  []string `toml:"ancestor_exe"`
	AncestorName []string `toml:"ancestor_name"`
	// AncestorDepth is how many ancestors ancestor_exe and ancestor_name
	// look at, 1..16 (0 or left out: 2, the parent and the grandparent).
	// It needs ancestor_exe or ancestor_name.
	AncestorDepth int `toml:"ancestor_depth"`
	// Key: some audit key of the event matches one of these globs.
	Key []string `toml:"key"`
	// Blocklisted and VTMaliciousMin: a hash of the event is on a
	// blocklist, or VirusTotal counts at least this many malicious verdicts
	// (one condition; 0 leaves VirusTotal out).
	Blocklisted    bool `toml:"blocklisted"`
	VTMaliciousMin int  `toml:"vt_malicious_min"`
	// PackageStatus: the package database's status of the event's hash
	// (the packages enricher's package.status) is one of these: package,
	// modified, relocated, unowned, unindexed.
	PackageStatus []string `toml:"package_status"`
}

// severities maps the severity names to Event.Severity values.
var severities = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}
