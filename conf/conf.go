// Package conf loads and validates the audisp-enrich configuration: one
// TOML file (default /etc/audisp-enrich/config.toml), decoded strictly.
// Unknown keys and bad values are errors that name the file and line.
package conf

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/blocklist"
	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/enrich/hunt"
	"github.com/audisp-enrich/audisp-enrich/enrich/proc"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
	"github.com/audisp-enrich/audisp-enrich/sinks/kafka"
	"github.com/audisp-enrich/audisp-enrich/sinks/remote"
	"github.com/audisp-enrich/audisp-enrich/sinks/syslog"
)

// DefaultPath is where the plugin looks for its config.
const DefaultPath = "/etc/audisp-enrich/config.toml"

// Example is the documented example config; print-default-config prints it
// and it is what runs when no config file is given.
//
//go:embed example.toml
var Example []byte

// Config is the whole configuration.
type Config struct {
	// User is the account the plugin switches to after opening what needs
	// root. "root" keeps root (not recommended).
	User string `toml:"user"`
	// StateDir holds buffers and caches.
	StateDir string `toml:"state_dir"`
	// MaxProcs is how many cores plugin mode runs Go code on at once (Go's
	// GOMAXPROCS), read at start. 1 (the default) costs the least CPU at
	// auditd's rates, since goroutines then hand events to each other
	// without waking other cores, and one core handles far more than
	// auditd delivers; 0 means every core. Replay always uses every core,
	// and a GOMAXPROCS environment variable wins over this.
	MaxProcs   int              `toml:"max_procs"`
	Input      InputConfig      `toml:"input"`
	Reassembly ReassemblyConfig `toml:"reassembly"`
	Log        LogConfig        `toml:"log"`
	Status     StatusConfig     `toml:"status"`
	Enrich     EnrichConfig     `toml:"enrich"`
	// Verdicts configures the fleet verdict service (`audisp-enrich
	// verdicts`); plugin mode ignores it. See docs/fleet.md.
	Verdicts fleet.ServiceConfig `toml:"verdicts"`
	Sinks    []SinkConfig        `toml:"-"`

	// File is the path the config was read from ("" for the built-in one).
	File string `toml:"-"`
}

// InputConfig configures the stdin reader.
type InputConfig struct {
	// Format is the plugins.d format: "string" (recommended), "binary"
	// (auto-detects the frame layout), "binary-fixed" (auditd <= 4.1.0) or
	// "binary-exact" (auditd >= 4.1.1).
	Format string `toml:"format"`
	// MaxLineBytes bounds one string-format line; longer lines are
	// counted, logged and skipped.
	MaxLineBytes int `toml:"max_line_bytes"`
	// QueueBatches bounds the hand-off queue between the reader and the
	// pipeline, in batches of up to 256 records. When it is full the
	// reader drops the batch and counts it rather than stall auditd.
	QueueBatches int `toml:"queue_batches"`
	// Coalesce is how long the reader waits before reading again after a
	// short read (under 32 KiB), so that records auditd writes one by one
	// are read, parsed and handed on in batches: at low rates at most one
	// read per Coalesce, which costs far less CPU than one per record, for
	// at most Coalesce of extra latency. Reads of 32 KiB or more (high
	// rates) are followed at once. 0 reads as soon as data arrives.
	Coalesce time.Duration `toml:"coalesce"`
}

// ReassemblyConfig configures event reassembly.
type ReassemblyConfig struct {
	// EOETimeout closes an event this long after its last record.
	EOETimeout time.Duration `toml:"eoe_timeout"`
	// MaxInFlight bounds the events open at once; the oldest is closed
	// early (and counted) past it.
	MaxInFlight int `toml:"max_in_flight"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Syslog sends logs to the local syslog (auditd gives plugins no usable
	// stderr). Logs also go to stderr when it is a terminal.
	Syslog bool `toml:"syslog"`
	// ParseErrors is a file that receives every rejected line with its raw
	// bytes (rate limited); "" sends them to the main log.
	ParseErrors string `toml:"parse_errors"`
	// ParseErrorRate is the most rejected lines logged per second; the rest
	// are counted.
	ParseErrorRate int `toml:"parse_error_rate"`
}

// StatusConfig configures reporting.
type StatusConfig struct {
	// Interval between status reports in the log; 0 turns them off.
	Interval time.Duration `toml:"interval"`
	// Listen serves Prometheus metrics: "127.0.0.1:9727" or
	// "unix:/run/audisp-enrich/metrics.sock"; "" turns it off.
	Listen string `toml:"listen"`
}

// EnrichConfig configures the enrichment pool and each enricher.
type EnrichConfig struct {
	// Workers is the number of enrichment goroutines.
	Workers int `toml:"workers"`
	// Queue bounds the events waiting for enrichment.
	Queue int `toml:"queue"`
	// Timeout bounds each enricher call.
	Timeout    time.Duration     `toml:"timeout"`
	Hashes     HashesConfig      `toml:"hashes"`
	Attack     attack.Config     `toml:"attack"`
	Proc       proc.Config       `toml:"proc"`
	Blocklist  blocklist.Config  `toml:"blocklist"`
	Hunt       hunt.Config       `toml:"hunt"`
	VirusTotal virustotal.Config `toml:"virustotal"`
	// Fleet takes VirusTotal verdicts from the fleet's verdict service
	// over Kafka instead of looking hashes up (docs/fleet.md).
	Fleet fleet.HostConfig `toml:"fleet"`
}

// HashesConfig switches the IMA hash extraction.
type HashesConfig struct {
	Enabled bool `toml:"enabled"`
}

// SinkConfig is one [[sink]] table.
type SinkConfig struct {
	// Name identifies the sink in logs and metrics (default: the type).
	Name string `toml:"name"`
	// Type is stdout, file, kafka, syslog or remote.
	Type string `toml:"type"`
	// Encoding is json (default), msgpack, or audit (text lines; the
	// remote sink always uses audit).
	Encoding string `toml:"encoding"`
	// Filter selects the documents this sink gets (all by default).
	Filter sinks.Filter `toml:"filter"`
	// Buffer is the sink's own buffer (network sinks; disk by default).
	Buffer buffer.Config `toml:"buffer"`
	// Delivery tunes batching and retries (network sinks).
	Delivery sinks.RunnerConfig `toml:"delivery"`
	File     *FileConfig        `toml:"file"`
	Kafka    *kafka.Config      `toml:"kafka"`
	Syslog   *syslog.Config     `toml:"syslog"`
	Remote   *remote.Config     `toml:"remote"`

	// Line is the line of the [[sink]] header, for error messages.
	Line int `toml:"-"`
}

// FileConfig configures the file sink.
type FileConfig struct {
	// Path of the JSON Lines file (appended; reopened on SIGHUP).
	Path string `toml:"path"`
	// MaxBytes rotates the file to PATH.1 ... PATH.N past this size; 0 never.
	MaxBytes int64 `toml:"max_bytes"`
	// Keep is how many rotated files to keep.
	Keep int `toml:"keep"`
	// Mode is the file mode of a new file.
	Mode int `toml:"mode"`
}

// Defaults returns the built-in defaults (what a key that is not set means).
func Defaults() Config {
	return Config{
		User:     "audisp-enrich",
		StateDir: "/var/lib/audisp-enrich",
		MaxProcs: 1,
		Input:    InputConfig{Format: "string", MaxLineBytes: 64 << 10, QueueBatches: 1024, Coalesce: 20 * time.Millisecond},
		Reassembly: ReassemblyConfig{
			EOETimeout: 2 * time.Second, MaxInFlight: 4096,
		},
		Log:    LogConfig{Level: "info", Syslog: true, ParseErrorRate: 10},
		Status: StatusConfig{Interval: 5 * time.Minute},
		Enrich: EnrichConfig{
			Workers: 2, Queue: 512, Timeout: 100 * time.Millisecond,
			Hashes:     HashesConfig{Enabled: true},
			Attack:     attack.DefaultConfig(),
			Proc:       proc.DefaultConfig(),
			Blocklist:  blocklist.DefaultConfig(),
			Hunt:       hunt.DefaultConfig(),
			VirusTotal: virustotal.DefaultConfig(),
			Fleet:      fleet.DefaultHostConfig(),
		},
		Verdicts: fleet.DefaultServiceConfig(),
	}
}

// DefaultFileConfig are the file sink defaults.
func DefaultFileConfig() FileConfig {
	return FileConfig{MaxBytes: 100 << 20, Keep: 5, Mode: 0o640}
}

// Load reads and validates the config at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Builtin returns the embedded example config.
func Builtin() *Config {
	c, err := Parse("", Example)
	if err != nil {
		panic("embedded example config is invalid: " + err.Error())
	}
	return c
}

// Parse decodes and validates data; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	if name == "" {
		name = "(built-in config)"
	}
	raw := struct {
		Config
		Sink []toml.Primitive `toml:"sink"`
	}{Config: Defaults()}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, posErr(name, data, err)
	}
	cfg := raw.Config
	if !md.IsDefined("enrich", "virustotal", "state_dir") {
		cfg.Enrich.VirusTotal.StateDir = cfg.StateDir
	}
	sinkLines := headerLines(data, "[[sink]]")
	for i, p := range raw.Sink {
		var head struct {
			Type string `toml:"type"`
		}
		// First read the type to start from that sink type's defaults.
		_ = md.PrimitiveDecode(p, &head)
		sc := SinkConfig{Type: head.Type, Encoding: "json", Buffer: buffer.DefaultConfig(), Delivery: sinks.DefaultRunnerConfig()}
		switch head.Type {
		case "file":
			fc := DefaultFileConfig()
			sc.File = &fc
		case "kafka":
			kc := kafka.DefaultConfig()
			sc.Kafka = &kc
		case "syslog":
			yc := syslog.DefaultConfig()
			sc.Syslog = &yc
		case "remote":
			rc := remote.DefaultConfig()
			sc.Remote = &rc
			sc.Encoding = "audit"
		}
		if err := md.PrimitiveDecode(p, &sc); err != nil {
			return nil, fmt.Errorf("%s:%d: [[sink]] #%d: %v", name, lineAt(sinkLines, i), i+1, err)
		}
		sc.Line = lineAt(sinkLines, i)
		cfg.Sinks = append(cfg.Sinks, sc)
	}
	if len(cfg.Sinks) == 0 && len(sinkLines) == 0 && name != "(built-in config)" {
		// Without a [[sink]], events go to stdout as JSON Lines, as with
		// the built-in config, rather than nowhere.
		cfg.Sinks = Builtin().Sinks
		cfg.Sinks[0].Line = 0
	}
	if und := md.Undecoded(); len(und) > 0 {
		var msgs []string
		for _, k := range und {
			msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", name, keyLine(data, k), k.String()))
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	if name != "(built-in config)" {
		cfg.File = name
	}
	if err := cfg.Validate(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &cfg, nil
}

// Validate checks every section; data (the file text, may be nil) lets
// errors name a line.
func (c *Config) Validate(data []byte) error {
	var errs []error
	// at reports err at the line of key (a dotted path such as
	// "input.format"), or of its table when the key is not written.
	at := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", pathLine(data, key), err))
		}
	}
	switch c.Input.Format {
	case "string", "binary", "binary-fixed", "binary-exact":
	default:
		at("input.format", fmt.Errorf("input.format %q: want string, binary, binary-fixed or binary-exact", c.Input.Format))
	}
	if c.Input.MaxLineBytes < 16<<10 || c.Input.MaxLineBytes > 16<<20 {
		at("input.max_line_bytes", fmt.Errorf("input.max_line_bytes %d: want 16384..16777216", c.Input.MaxLineBytes))
	}
	if c.MaxProcs < 0 || c.MaxProcs > 1024 {
		at("max_procs", fmt.Errorf("max_procs %d: want 0..1024", c.MaxProcs))
	}
	if c.Input.QueueBatches < 1 {
		at("input.queue_batches", fmt.Errorf("input.queue_batches must be at least 1"))
	}
	if c.Input.Coalesce < 0 || c.Input.Coalesce > 100*time.Millisecond {
		at("input.coalesce", fmt.Errorf("input.coalesce %s: want 0..100ms", c.Input.Coalesce))
	}
	if c.Reassembly.EOETimeout <= 0 || c.Reassembly.EOETimeout > time.Minute {
		at("reassembly.eoe_timeout", fmt.Errorf("reassembly.eoe_timeout %s: want (0, 1m]", c.Reassembly.EOETimeout))
	}
	if c.Reassembly.MaxInFlight < 1 {
		at("reassembly.max_in_flight", fmt.Errorf("reassembly.max_in_flight must be at least 1"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		at("log.level", fmt.Errorf("log.level %q: want debug, info, warn or error", c.Log.Level))
	}
	if c.Enrich.Workers < 1 || c.Enrich.Workers > 256 {
		at("enrich.workers", fmt.Errorf("enrich.workers %d: want 1..256", c.Enrich.Workers))
	}
	if c.Enrich.Queue < 1 {
		at("enrich.queue", fmt.Errorf("enrich.queue must be at least 1"))
	}
	if c.Enrich.Timeout <= 0 {
		at("enrich.timeout", fmt.Errorf("enrich.timeout must be positive"))
	}
	at("enrich.attack", c.Enrich.Attack.Validate())
	at("enrich.proc", c.Enrich.Proc.Validate())
	at("enrich.blocklist", c.Enrich.Blocklist.Validate())
	at("enrich.hunt", c.Enrich.Hunt.Validate())
	if c.Enrich.VirusTotal.Enabled {
		at("enrich.virustotal", c.Enrich.VirusTotal.Validate())
	}
	if c.Enrich.Fleet.Enabled {
		at("enrich.fleet", c.Enrich.Fleet.Validate())
		if c.Enrich.VirusTotal.Enabled {
			at("enrich.fleet", errors.New("enrich.fleet and enrich.virustotal are both enabled; a fleet host holds no VirusTotal key: enable one"))
		}
	}
	if len(c.Verdicts.Brokers) > 0 {
		at("verdicts", c.Verdicts.Validate())
	}
	names := map[string]bool{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		bad := func(err error) {
			errs = append(errs, fmt.Errorf("line %d: [[sink]] #%d (%s): %w", s.Line, i+1, s.Type, err))
		}
		if s.Name == "" {
			s.Name = s.Type
		}
		if names[s.Name] {
			bad(fmt.Errorf("duplicate sink name %q (set name = ...)", s.Name))
		}
		names[s.Name] = true
		switch s.Encoding {
		case "json", "msgpack", "audit":
		default:
			bad(fmt.Errorf("encoding %q: want json, msgpack or audit", s.Encoding))
		}
		if err := s.Filter.Validate(); err != nil {
			bad(err)
		}
		if err := s.Buffer.Validate(); err != nil {
			bad(err)
		}
		if err := s.Delivery.Validate(); err != nil {
			bad(err)
		}
		switch s.Type {
		case "stdout":
		case "remote":
			if s.Remote == nil {
				bad(errors.New("remote sink needs a [sink.remote] table"))
			} else if err := s.Remote.Validate(); err != nil {
				bad(err)
			}
			if s.Encoding != "audit" {
				bad(fmt.Errorf("remote sink sends audit text; encoding must be \"audit\", not %q", s.Encoding))
			}
		case "file":
			if s.File == nil || s.File.Path == "" {
				bad(errors.New("file sink needs [sink.file] path"))
			}
		case "kafka":
			if s.Kafka == nil {
				bad(errors.New("kafka sink needs a [sink.kafka] table"))
			} else if err := s.Kafka.Validate(); err != nil {
				bad(err)
			}
		case "syslog":
			if s.Syslog == nil {
				bad(errors.New("syslog sink needs a [sink.syslog] table"))
			} else if err := s.Syslog.Validate(); err != nil {
				bad(err)
			}
		default:
			bad(fmt.Errorf("unknown type %q: want stdout, file, kafka, syslog or remote", s.Type))
		}
	}
	return errors.Join(errs...)
}

// posErr adds file:line to a toml error. When the line sets a secret
// (a password or an API key), the parser's message is not repeated: it may
// quote the secret itself.
func posErr(name string, data []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if isSecretLine(data, pe.Position.Line) {
			return fmt.Errorf("%s:%d: syntax error in the value of a secret (quote it as a TOML string)", name, pe.Position.Line)
		}
		return fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// isSecretLine reports whether the 1-based line n of data sets a key whose
// value is a secret.
func isSecretLine(data []byte, n int) bool {
	lines := strings.Split(string(data), "\n")
	if n < 1 || n > len(lines) {
		return false
	}
	key, _, _ := strings.Cut(lines[n-1], "=")
	key = strings.ToLower(key)
	return strings.Contains(key, "password") || strings.Contains(key, "api_key") || strings.Contains(key, "secret")
}

// headerLines returns the 1-based lines where header (e.g. "[[sink]]") starts.
func headerLines(data []byte, header string) []int {
	var out []int
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == header {
			out = append(out, i+1)
		}
	}
	return out
}

func lineAt(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

// pathLine finds the line where a dotted key path is set: as a dotted key
// ("input.format = "), as a key under its table header, or else the table
// header itself; 0 when none is written.
func pathLine(data []byte, path string) int {
	k := toml.Key(strings.Split(path, "."))
	if n := keyLine(data, k); n > 0 {
		return n
	}
	for i := len(k) - 1; i >= 1; i-- {
		if n := sectionLine(data, strings.Join(k[:i], ".")); n > 0 {
			return n
		}
	}
	return 0
}

// sectionLine finds the line of a [section] header; 0 when absent.
func sectionLine(data []byte, section string) int {
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == "["+section+"]" {
			return i + 1
		}
	}
	return 0
}

// keyLine finds the line where the last part of key is set, after its
// table header when there is one.
func keyLine(data []byte, k toml.Key) int {
	lines := strings.Split(string(data), "\n")
	dotted := strings.Join(k, ".")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, dotted) && strings.HasPrefix(strings.TrimSpace(l[len(dotted):]), "=") {
			return i + 1
		}
	}
	from := 0
	if len(k) > 1 {
		if n := sectionLine(data, strings.Join(k[:len(k)-1], ".")); n > 0 {
			from = n - 1
		}
	}
	last := k[len(k)-1]
	for i := from; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, last) && strings.HasPrefix(strings.TrimSpace(l[len(last):]), "=") {
			return i + 1
		}
		if strings.TrimSpace(l) == "["+strings.Join(k, ".")+"]" {
			return i + 1
		}
	}
	return 0
}
