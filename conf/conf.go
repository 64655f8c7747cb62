// Package conf loads and validates the audisp-enrich configuration: one
// TOML file (default /etc/audisp-enrich/config.toml), decoded strictly.
// Unknown keys and bad values are errors that name the file and line.
package conf

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/blocklist"
	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/enrich/hunt"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/enrich/proc"
	"github.com/audisp-enrich/audisp-enrich/enrich/sigma"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
	"github.com/audisp-enrich/audisp-enrich/sinks/gelf"
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
	// root. "root" keeps root (not recommended); "" is an error.
	User string `toml:"user"`
	// StateDir holds buffers and caches; "" is an error.
	StateDir string `toml:"state_dir"`
	// MaxProcs is how many cores plugin mode runs Go code on at once (Go's
	// GOMAXPROCS), read at start. 1 (the default) costs the least CPU at
	// auditd's rates, since goroutines then hand events to each other
	// without waking other cores, and one core handles far more than
	// auditd delivers; 0 means every core. Replay does not read it: it
	// runs on one core (see docs/performance.md), and a GOMAXPROCS
	// environment variable wins over both.
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
	// short read (under half the stdin pipe's capacity: 512 KiB once
	// plugin mode has enlarged it to 1 MiB, 32 KiB for a default 64 KiB
	// pipe; plugin/input.go), so that records auditd writes one by one
	// are read, parsed and handed on in batches: at low rates at most one
	// read per Coalesce, which costs far less CPU than one per record, for
	// at most Coalesce of extra latency. Longer reads (high rates) are
	// followed at once. 0 reads as soon as data arrives.
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
	// ParseErrorRate is the most rejected lines logged per second, and
	// the most flagged lines (processed all the same); the rest
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
	// Queue bounds the events in the enrichment pool (waiting, being
	// enriched, or encoded and waiting for their turn to be delivered).
	Queue int `toml:"queue"`
	// Timeout bounds each enricher call.
	Timeout    time.Duration     `toml:"timeout"`
	Hashes     HashesConfig      `toml:"hashes"`
	Attack     attack.Config     `toml:"attack"`
	Proc       proc.Config       `toml:"proc"`
	Blocklist  blocklist.Config  `toml:"blocklist"`
	Packages   packages.Config   `toml:"packages"`
	Hunt       hunt.Config       `toml:"hunt"`
	Sigma      sigma.Config      `toml:"sigma"`
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
	// Type is stdout, file, kafka, syslog, gelf or remote.
	Type string `toml:"type"`
	// Encoding is json (default), msgpack, or audit (text lines; the
	// remote sink always uses audit, the gelf sink json).
	Encoding string `toml:"encoding"`
	// Profile is the document of the json and msgpack encodings: "full"
	// (default; the lossless document, docs/schema/event.schema.json) or
	// "ecs" (Elastic Common Schema names, about a quarter of the size,
	// docs/schema/ecs.schema.json). The audit encoding has no profile.
	Profile string `toml:"profile"`
	// Original adds the audit records as event.original to ecs
	// documents, one per line, without the stamp that event.id holds
	// (the documents are then lossless; sinks/ecs.Rebuild). ecs profile
	// only.
	Original bool `toml:"original"`
	// References adds the ATT&CK names and URLs (threat.*.name,
	// threat.*.reference) to ecs documents, which otherwise carry only
	// the ids. ecs profile only.
	References bool `toml:"references"`
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
	Gelf     *gelf.Config       `toml:"gelf"`

	// Line is the line of the [[sink]] header, for error messages.
	Line int `toml:"-"`
}

// Local reports whether the sink is written from the publishing goroutine
// (stdout, file) rather than through a runner and its buffer (the network
// sinks: kafka, syslog, gelf, remote), so [sink.buffer] and
// [sink.delivery] do not apply to it.
func (s *SinkConfig) Local() bool { return s.Type == "stdout" || s.Type == "file" }

// FileConfig configures the file sink.
type FileConfig struct {
	// Path of the JSON Lines file (appended; reopened on SIGHUP).
	Path string `toml:"path"`
	// MaxBytes rotates the file to PATH.1 ... PATH.N past this size; 0 never.
	MaxBytes int64 `toml:"max_bytes"`
	// Keep is how many rotated files to keep (at least 1).
	Keep int `toml:"keep"`
	// Mode is the file mode of a new file, 0..0o777.
	Mode int `toml:"mode"`
}

// Validate checks the options; every problem is returned, joined, each
// message starting with its key.
func (c *FileConfig) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("file sink needs [sink.file] path"))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes %d: must not be negative (0 never rotates)", c.MaxBytes))
	}
	if c.Keep < 1 {
		errs = append(errs, fmt.Errorf("keep %d: want at least 1", c.Keep))
	}
	if c.Mode < 0 || c.Mode > 0o777 {
		msg := fmt.Sprintf("mode %d: want 0..0o777, a TOML octal such as 0o640", c.Mode)
		if d := strconv.Itoa(c.Mode); c.Mode > 0 && strings.Trim(d, "01234567") == "" {
			msg = fmt.Sprintf("mode %d: want 0..0o777 (a decimal %s is 0o%o: write it as 0o%s)", c.Mode, d, c.Mode, d)
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
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
			Workers: 2, Queue: 64, Timeout: 100 * time.Millisecond,
			Hashes:     HashesConfig{Enabled: true},
			Attack:     attack.DefaultConfig(),
			Proc:       proc.DefaultConfig(),
			Blocklist:  blocklist.DefaultConfig(),
			Packages:   packages.DefaultConfig(),
			Hunt:       hunt.DefaultConfig(),
			Sigma:      sigma.DefaultConfig(),
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

// Load reads and validates the config at path. A file that cannot be read
// gives "PATH: reason"; a file with problems gives an *Error.
func Load(path string) (*Config, error) {
	data, err := Read(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Read reads the config file at path, with errors in Load's form ("PATH:
// reason"), for a caller that looks at the text before Parse.
func Read(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %w", path, pe.Err)
		}
		return nil, err
	}
	return data, nil
}

// Builtin returns the embedded example config.
func Builtin() *Config {
	c, err := Parse("", Example)
	if err != nil {
		panic("embedded example config is invalid: " + err.Error())
	}
	return c
}

const builtinName = "(built-in config)"

// Parse decodes and validates data; name is used in error messages. Every
// problem is reported, not only the first (a TOML syntax error ends the
// file, though): the error is an *Error.
func Parse(name string, data []byte) (*Config, error) {
	if name == "" {
		name = builtinName
	}
	var top map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&top)
	if err != nil {
		return nil, &Error{File: name, Problems: []Problem{syntaxProblem(data, err)}}
	}
	r := &report{md: md, loc: locate(data)}
	cfg := Defaults()
	sinkTables, hasSinks := top["sink"]
	delete(top, "sink") // [[sink]] tables are decoded below, each from its type's defaults
	r.fields(top, "", reflect.ValueOf(&cfg).Elem())
	if !md.IsDefined("enrich", "virustotal", "state_dir") {
		cfg.Enrich.VirusTotal.StateDir = cfg.StateDir
	}
	if !md.IsDefined("enrich", "packages", "state_dir") {
		cfg.Enrich.Packages.StateDir = cfg.StateDir
	}
	if !md.IsDefined("enrich", "fleet", "state_dir") {
		cfg.Enrich.Fleet.StateDir = cfg.StateDir
	}
	var ps []toml.Primitive
	if hasSinks && md.PrimitiveDecode(sinkTables, &ps) != nil {
		r.add("sink", true, "sink: want [[sink]] tables")
	}
	for i, p := range ps {
		path := fmt.Sprintf("sink[%d]", i)
		var head struct {
			Type string `toml:"type"`
		}
		_ = md.PrimitiveDecode(p, &head) // a bad type is reported by r.table
		sc := newSink(head.Type)
		r.table(p, path, reflect.ValueOf(&sc).Elem())
		sc.Line = r.loc[path].Line
		cfg.Sinks = append(cfg.Sinks, sc)
	}
	if !hasSinks && name != builtinName {
		// Without a [[sink]], events go to stdout as JSON Lines, as with
		// the built-in config, rather than nowhere.
		cfg.Sinks = Builtin().Sinks
		cfg.Sinks[0].Line = 0
	}
	if name != builtinName {
		cfg.File = name
	}
	cfg.validate(r)
	if err := r.err(name); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// KeepStateDir makes c, a config read again for a reload, keep the state
// directory the plugin started with (state_dir applies only at the next
// start): the state directories of [enrich.virustotal], [enrich.packages]
// and [enrich.fleet] that follow c's state_dir (unset, or set to the same
// directory) follow started instead, so that a reload does not move them.
func (c *Config) KeepStateDir(started string) {
	if c.StateDir == started {
		return
	}
	for _, d := range []*string{&c.Enrich.VirusTotal.StateDir, &c.Enrich.Packages.StateDir, &c.Enrich.Fleet.StateDir} {
		if *d == c.StateDir {
			*d = started
		}
	}
}

// At returns err, found after loading (a file the config names cannot be
// read), as an *Error placed in the config file the way Parse places a
// problem (see report.check): at key, or at the key below it that err's
// message names. It re-reads the file; when it cannot, or for the
// built-in config, the problem has no place.
func (c *Config) At(key string, err error) error {
	name, data := c.File, Example
	if name == "" {
		name = builtinName
	} else if data, _ = os.ReadFile(name); data == nil {
		data = []byte{}
	}
	r := &report{loc: locate(data)}
	r.check(key, err)
	return r.err(name)
}

// newSink returns a sink of type typ with that type's defaults.
func newSink(typ string) SinkConfig {
	sc := SinkConfig{Type: typ, Encoding: "json", Profile: "full", Buffer: buffer.DefaultConfig(), Delivery: sinks.DefaultRunnerConfig()}
	switch typ {
	case "file":
		fc := DefaultFileConfig()
		sc.File = &fc
	case "kafka":
		kc := kafka.DefaultConfig()
		sc.Kafka = &kc
	case "syslog":
		yc := syslog.DefaultConfig()
		sc.Syslog = &yc
	case "gelf":
		gc := gelf.DefaultConfig()
		sc.Gelf = &gc
	case "remote":
		rc := remote.DefaultConfig()
		sc.Remote = &rc
		sc.Encoding = "audit"
	}
	return sc
}

// validate checks every section and adds each problem to r.
func (c *Config) validate(r *report) {
	// at reports err at key (a dotted path such as "input.format"), or at
	// the key of key's table its message starts with (see report.check).
	at := r.check
	if c.User == "" {
		at("user", errors.New(`user "": want an account name ("root" keeps root)`))
	}
	if c.StateDir == "" {
		at("state_dir", errors.New("state_dir: must not be empty"))
	}
	at("input.format", oneOf("input.format", c.Input.Format, "string", "binary", "binary-fixed", "binary-exact"))
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
	at("log.level", oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"))
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
	if c.Enrich.Packages.Enabled {
		at("enrich.packages", c.Enrich.Packages.Validate())
	}
	at("enrich.hunt", c.Enrich.Hunt.Validate())
	at("enrich.sigma", c.Enrich.Sigma.Validate())
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
	spools := map[string]string{} // a disk spool directory -> the sink that has it
	for i := range c.Sinks {
		s := &c.Sinks[i]
		path := fmt.Sprintf("sink[%d]", i)
		// bad reports err at key of this sink (see report.check).
		bad := func(key string, err error) {
			if err != nil {
				at(join(path, key), fmt.Errorf("%s: %w", path, err))
			}
		}
		if s.Name == "" {
			s.Name = s.Type
		}
		if names[s.Name] {
			bad("name", fmt.Errorf("duplicate sink name %q (set name = ...)", s.Name))
		}
		names[s.Name] = true
		if !s.Local() && s.Buffer.Type != "memory" {
			dir := s.Buffer.Dir
			if dir == "" {
				dir = buffer.SpoolDir(c.StateDir, s.Name)
			}
			if other, ok := spools[filepath.Clean(dir)]; ok {
				bad("name", fmt.Errorf("sinks %q and %q would share the spool directory %s (each disk buffer locks its own): rename one or set buffer.dir", other, s.Name, dir))
			}
			spools[filepath.Clean(dir)] = s.Name
		}
		bad("encoding", oneOf("encoding", s.Encoding, "json", "msgpack", "audit"))
		bad("filter", s.Filter.Validate())
		bad("buffer", s.Buffer.Validate())
		bad("delivery", s.Delivery.Validate())
		bad("profile", oneOf("profile", s.Profile, "full", "ecs"))
		if s.Profile != "ecs" && (s.Original || s.References) {
			bad("original", errors.New("original and references apply to the ecs profile only (set profile = \"ecs\")"))
		}
		if slices.Contains(sinkTypes, s.Type) {
			r.otherTables(path, s)
		}
		switch s.Type {
		case "stdout":
		case "remote":
			bad("remote", s.Remote.Validate())
			if s.Encoding != "audit" {
				bad("encoding", fmt.Errorf("remote sink sends audit text; encoding must be \"audit\", not %q", s.Encoding))
			}
		case "file":
			bad("file", s.File.Validate())
		case "kafka":
			bad("kafka", s.Kafka.Validate())
		case "syslog":
			bad("syslog", s.Syslog.Validate())
		case "gelf":
			bad("gelf", s.Gelf.Validate())
			if s.Encoding != "json" {
				bad("encoding", fmt.Errorf("gelf sink flattens JSON documents; encoding must be \"json\", not %q", s.Encoding))
			}
		default:
			at(path+".type", oneOf(path+".type", s.Type, sinkTypes...))
		}
	}
}

// sinkTypes are the values of a sink's type.
var sinkTypes = []string{"stdout", "file", "kafka", "syslog", "gelf", "remote"}

// otherTables reports, at its header, each table of the sink at path that
// does not apply to its type: the table of another type ([sink.kafka] in a
// file sink; each is set only when written, see newSink), and [sink.buffer]
// and [sink.delivery] in a local sink.
func (r *report) otherTables(path string, s *SinkConfig) {
	tables := []struct {
		key string
		set bool
	}{{"file", s.File != nil}, {"kafka", s.Kafka != nil}, {"syslog", s.Syslog != nil},
		{"gelf", s.Gelf != nil}, {"remote", s.Remote != nil}}
	for _, t := range tables {
		if t.set && t.key != s.Type {
			r.add(join(path, t.key), false, fmt.Sprintf("%s: [sink.%s] does not apply to a sink of type %s", path, t.key, s.Type))
		}
	}
	if !s.Local() {
		return
	}
	for _, key := range []string{"buffer", "delivery"} {
		if _, ok := r.loc[join(path, key)]; ok {
			r.add(join(path, key), false, fmt.Sprintf("%s: [sink.%s] applies to network sinks only, not to a sink of type %s", path, key, s.Type))
		}
	}
}

// syntaxProblem places a TOML syntax error. When its line sets a secret
// (a password or an API key), the parser's message is not repeated: it may
// quote the secret itself.
func syntaxProblem(data []byte, err error) Problem {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return Problem{Msg: err.Error()}
	}
	lines := strings.Split(string(data), "\n")
	p := Problem{Line: pe.Position.Line, Col: max(pe.Position.Col, 1), Msg: pe.Message}
	// When the parser stopped at a newline ("but got '\n' instead"), it
	// has already counted it into the next line, at the column the
	// newline has on its own line: the problem is on that line.
	if n := p.Line; strings.Contains(p.Msg, `'\n'`) && n >= 2 && n-1 <= len(lines) && p.Col == len(lines[n-2])+1 {
		p.Line--
	}
	if n := p.Line; n >= 1 && n <= len(lines) && isSecret(strings.SplitN(lines[n-1], "=", 2)[0]) {
		p.Msg = "syntax error in the value of a secret (quote it as a TOML string)"
	}
	return p
}
