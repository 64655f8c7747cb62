package virustotal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
)

// EnvAPIKey is the environment variable consulted for the API key when
// neither api_key nor api_key_file is set. auditd starts its plugins with an
// empty environment, so this is meant for `replay` and development runs.
const EnvAPIKey = "AUDISP_ENRICH_VT_API_KEY"

// DefaultHost is the public VirusTotal API host.
const DefaultHost = "https://www.virustotal.com"

// Config configures the VirusTotal enricher ([enrich.virustotal] in TOML).
//
// Budgets of 0 mean "no limit" for that window (premium keys); the defaults
// are the public API's limits.
type Config struct {
	// Enabled turns lookups on. Default false: the public API must not be
	// used in commercial products, so the operator opts in with a key.
	Enabled bool `toml:"enabled"`
	// APIKey is the VirusTotal API key. Prefer APIKeyFile: a key in the main
	// config file ends up in backups and bug reports.
	APIKey string `toml:"api_key"`
	// APIKeyFile is a file holding only the key (surrounding whitespace is
	// ignored). A group- or world-writable file is refused; one readable by
	// others is used with a warning. Group-readable is right: the plugin
	// reads the file again on a reload, after it switched to the service
	// user, so the file is root's with the service user's group, mode 0640
	// (0600 only when the plugin stays root).
	APIKeyFile string `toml:"api_key_file"`
	// Host is the API base URL, "https://www.virustotal.com" by default; an
	// "http://" host is accepted for tests and local proxies. vt-go keeps the
	// host in a package-global, so all enrichers in one process share it.
	Host string `toml:"host"`
	// AnswersFile, when set, answers lookups from this JSON file instead
	// of the API: an object whose keys are lower-case SHA-256 digests and
	// whose values are the API's answer for that file (GET
	// /api/v3/files/{id}: {"data": {...}}). Other hashes are "not found".
	// Nothing goes over the network and no API key is needed: for demos
	// and offline replays (the bundled demo uses it).
	AnswersFile string `toml:"answers_file"`
	// Timeout bounds one HTTP request, headers and body included. Default 20s.
	Timeout time.Duration `toml:"timeout"`
	// MaxWait is how long Enrich may hold an event waiting for a lookup that
	// is not cached (it never waits past ctx's deadline either, which the
	// pool sets to enrich.timeout after the chain started). Default 0: never wait; the event leaves with status
	// "pending" and a verdict document follows.
	MaxWait time.Duration `toml:"max_wait"`
	// PerMinute, PerDay and PerMonth are the request budgets. The minute
	// window slides; the day resets at 00:00 UTC and the month at 00:00 UTC
	// on the 1st. Defaults 4, 500, 15500 (the public API).
	PerMinute int `toml:"per_minute"`
	PerDay    int `toml:"per_day"`
	PerMonth  int `toml:"per_month"`
	// Pace spreads the day budget evenly over the rest of the UTC day:
	// after a request, the next waits at least (time to midnight) /
	// (requests left today), so a burst cannot spend the day in its first
	// hours and leave later (possibly more urgent) hashes waiting for
	// midnight. Meant for the fleet verdict service. Default false.
	Pace bool `toml:"pace"`
	// CacheSize is the number of verdicts kept in memory (LRU). The disk
	// cache in StateDir holds every verdict until its TTL expires. Default 65536.
	CacheSize int `toml:"cache_size"`
	// TTLMalicious is how long a verdict with at least one malicious
	// detection stays cached. Default 30 days.
	TTLMalicious time.Duration `toml:"ttl_malicious"`
	// TTLClean is how long any other found verdict stays cached. Default 7 days.
	TTLClean time.Duration `toml:"ttl_clean"`
	// TTLNotFound is how long "VirusTotal does not know this file" stays
	// cached. Default 12 hours.
	TTLNotFound time.Duration `toml:"ttl_not_found"`
	// QueueSize bounds the pending queue of hashes waiting for a lookup.
	// Default 10000.
	QueueSize int `toml:"queue_size"`
	// StateDir holds vt.db (disk cache, pending queue, budget counters), so
	// that a restart neither forgets verdicts nor resets the budget. Required
	// when Enabled. Default /var/lib/audisp-enrich.
	StateDir string `toml:"state_dir"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Host:         DefaultHost,
		Timeout:      20 * time.Second,
		PerMinute:    4,
		PerDay:       500,
		PerMonth:     15500,
		CacheSize:    65536,
		TTLMalicious: 30 * 24 * time.Hour,
		TTLClean:     7 * 24 * time.Hour,
		TTLNotFound:  12 * time.Hour,
		QueueSize:    10000,
		StateDir:     "/var/lib/audisp-enrich",
	}
}

// Validate checks the options without touching the file system or the
// network; the key itself is resolved by New.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("virustotal: "+format, a...)) }
	if c.AnswersFile != "" && (c.APIKey != "" || c.APIKeyFile != "") {
		bad("answers_file answers every lookup; api_key and api_key_file must not be set with it")
	}
	if c.APIKey != "" && c.APIKeyFile != "" {
		bad("api_key and api_key_file are both set; use one")
	}
	if c.Host != "" {
		u, err := url.Parse(c.Host)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			bad("host %q: want http(s)://HOST[:PORT]", c.Host)
		}
	}
	if c.Timeout <= 0 {
		bad("timeout must be > 0")
	}
	if c.MaxWait < 0 {
		bad("max_wait must be >= 0")
	}
	if c.PerMinute < 0 || c.PerDay < 0 || c.PerMonth < 0 {
		bad("per_minute, per_day and per_month must be >= 0 (0 = no limit)")
	}
	if c.CacheSize <= 0 {
		bad("cache_size must be > 0")
	}
	if c.TTLMalicious <= 0 || c.TTLClean <= 0 || c.TTLNotFound <= 0 {
		bad("ttl_malicious, ttl_clean and ttl_not_found must be > 0")
	}
	if c.QueueSize <= 0 {
		bad("queue_size must be > 0")
	}
	if c.Enabled && c.StateDir == "" {
		bad("state_dir is required when enabled (the budget must survive restarts)")
	}
	return errors.Join(errs...)
}

// String renders the config with the API key redacted, so that printing a
// Config with %v or %+v cannot leak it.
func (c Config) String() string {
	type plain Config // drops the String method
	p := plain(c)
	if p.APIKey != "" {
		p.APIKey = redacted
	}
	return fmt.Sprintf("%+v", p)
}

// LogValue renders the config for slog with the API key redacted.
func (c Config) LogValue() slog.Value {
	return slog.StringValue(c.String())
}

// loadKey resolves the API key: api_key, then api_key_file, then the
// environment. Errors name the source, never the key.
func loadKey(c *Config, log *slog.Logger) (string, error) {
	var key, src string
	switch {
	case c.APIKey != "":
		key, src = c.APIKey, "api_key"
	case c.APIKeyFile != "":
		k, err := readKeyFile(c.APIKeyFile, log)
		if err != nil {
			return "", err
		}
		key, src = k, "api_key_file "+c.APIKeyFile
	default:
		key, src = os.Getenv(EnvAPIKey), EnvAPIKey
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", fmt.Errorf("virustotal: no API key: set api_key, api_key_file or %s", EnvAPIKey)
	}
	if strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", fmt.Errorf("virustotal: the API key from %s contains whitespace or control characters", src)
	}
	return key, nil
}

// keyFileMode says how api_key_file should be protected. Not 0600 root:root:
// a reload reads the file again as the service user.
const keyFileMode = "make it root's, group the service user's, mode 0640 (0600 only with user = \"root\")"

// maxKeyFile bounds what is read from api_key_file.
const maxKeyFile = 4096

func readKeyFile(path string, log *slog.Logger) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("virustotal: api_key_file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("virustotal: api_key_file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("virustotal: api_key_file %s: not a regular file", path)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return "", fmt.Errorf("virustotal: api_key_file %s: refusing a group- or world-writable key file (mode %04o); %s", path, perm, keyFileMode)
	}
	if perm&0o004 != 0 {
		log.Warn("virustotal: API key file is readable by others; "+keyFileMode,
			"file", path, "mode", fmt.Sprintf("%04o", perm))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("virustotal: api_key_file: %w", err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("virustotal: api_key_file %s: larger than %d bytes, not a key file", path, maxKeyFile)
	}
	return string(b), nil
}

// redacted replaces the API key wherever it would appear.
const redacted = "[REDACTED]"

// redactor removes one secret from text.
type redactor struct{ forms []string }

func newRedactor(key string) redactor {
	forms := []string{key}
	if q := url.QueryEscape(key); q != key {
		forms = append(forms, q)
	}
	return redactor{forms: forms}
}

func (r redactor) str(s string) string {
	for _, f := range r.forms {
		if f != "" {
			s = strings.ReplaceAll(s, f, redacted)
		}
	}
	return s
}
