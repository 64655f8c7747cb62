// Command audisp-enrich is an auditd dispatcher plugin that rebuilds audit
// events, enriches them and ships them to Kafka, syslog or remote auditd.
// See audisp-enrich(8).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Usage:
  audisp-enrich [--config FILE]                 plugin mode: read auditd's stream on stdin
  audisp-enrich replay [--config FILE] [--cpuprofile OUT] [FILE...]
                                                run audit.log files (plain or .gz; - is stdin)
  audisp-enrich check-config FILE               validate a config file
  audisp-enrich print-default-config            print the documented default config
  audisp-enrich stats [--config FILE]           print the live figures of the running plugin
  audisp-enrich verdicts --config FILE [init]   fleet verdict service (init: create its topics and exit)
  audisp-enrich verdicts keygen FILE            write a verdict signing key, print its public key
  audisp-enrich packages status [--config FILE] print the state of the package index
  audisp-enrich help [COMMAND]                  print this summary or a command's usage
  audisp-enrich --version | --help

Plugin mode reads ` + conf.DefaultPath + ` when it exists and --config is not given.
`

const packagesUsage = `Usage: audisp-enrich packages status [--config FILE]

Prints the state of the package index ([enrich.packages]): the persisted
hashes checked against the package database now, without hashing anything.
Exit status 1 when the index is off or the database cannot be read.
`

// command is one command of the command line.
type command struct {
	// maxArgs is how many arguments it takes after its flags (-1: any).
	maxArgs int
	// usage is printed by "help COMMAND" and "COMMAND --help" (on stdout)
	// and after a usage error (on stderr).
	usage string
}

// checkConfigWarning is check-config's exit status for a valid file that
// would not run on this machine (its user does not exist).
const checkConfigWarning = 3

// commands are the commands; "" is plugin mode, whose usage is the summary.
var commands = map[string]command{
	"": {0, usage},
	"replay": {-1, `Usage: audisp-enrich replay [--config FILE] [--cpuprofile OUT] [FILE...]

Runs audit.log files (plain or gzip) through the pipeline and writes what the
config's sinks write (the built-in config: JSON Lines on stdout). No FILE, or
-, reads stdin. A file that cannot be read is reported and skipped; the exit
status is then 1. On a terminal, long files show a progress line on stderr.
--cpuprofile writes a CPU profile of the whole replay to OUT (go tool pprof).
SIGINT or SIGTERM stops it, also while its input is idle: exit status 130
(SIGINT) or 143 (SIGTERM); the documents already written stay.
`},
	"check-config": {1, `Usage: audisp-enrich check-config FILE

Loads and validates FILE and prints "FILE: ok", or every problem found as
FILE:LINE:COL: message (exit status 1). A valid file whose user is not an
account on this machine gets a warning instead of "ok" (exit status 3): the
plugin would stop at start here.
`},
	"print-default-config": {0, `Usage: audisp-enrich print-default-config

Prints the built-in config, every key with its default and meaning.
`},
	"stats": {0, `Usage: audisp-enrich stats [--config FILE]

Prints the live figures of the plugin running with that config.
`},
	"verdicts":        {-1, verdictsUsage},
	"packages status": {0, packagesUsage},
	"packages":        {0, packagesUsage},
	"help": {2, `Usage: audisp-enrich help [COMMAND]

Prints the command summary, or the usage of COMMAND (a sub-command's
words may follow: help packages status).
`},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// fail writes err to stderr with the program name before each of its
// lines (a config error has one line per problem).
func fail(stderr io.Writer, err error) {
	for _, l := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintf(stderr, "%s: %s\n", progName, l)
	}
}

// usageError reports a usage error and the command's usage on stderr and
// returns exit status 2.
func usageError(stderr io.Writer, cmd string, err error) int {
	fail(stderr, err)
	fmt.Fprint(stderr, usageOf(cmd))
	return 2
}

func usageOf(cmd string) string {
	if c, ok := commands[cmd]; ok {
		return c.usage
	}
	return usage
}

const progName = "audisp-enrich"

// run is the whole command line: it returns the exit status (0 success,
// 1 runtime or config error, 2 usage error, 128 + signal number for a
// replay that SIGINT or SIGTERM interrupted).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "packages" && len(args) > 0 && args[0] == "status" {
		cmd, args = "packages status", args[1:]
	}
	c, ok := commands[cmd]
	if !ok {
		return usageError(stderr, "", fmt.Errorf("unknown command %q", cmd))
	}
	fs := flag.NewFlagSet(progName, flag.ContinueOnError)
	// The flag package would print its message and the usage itself, to
	// one writer; run prints them where they belong.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	cfgPath := fs.String("config", "", "config file")
	showVersion := fs.Bool("version", false, "print the version")
	var cpuProfile *string
	if cmd == "replay" {
		cpuProfile = fs.String("cpuprofile", "", "write a CPU profile of the replay to this file")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageOf(cmd))
			return 0
		}
		return usageError(stderr, cmd, err)
	}
	if *showVersion {
		fmt.Fprintf(stdout, "%s %s\n", progName, version)
		return 0
	}
	if c.maxArgs >= 0 && fs.NArg() > c.maxArgs {
		return usageError(stderr, cmd, fmt.Errorf("unexpected argument %q", fs.Arg(c.maxArgs)))
	}
	if *cfgPath != "" && (cmd == "print-default-config" || cmd == "help") {
		return usageError(stderr, cmd, fmt.Errorf("%s reads no config: --config is not allowed", cmd))
	}
	switch cmd {
	case "":
		return plugMode(*cfgPath, stdin, stderr)
	case "replay":
		return replay(*cfgPath, *cpuProfile, fs.Args(), stdin, stderr)
	case "check-config":
		path := *cfgPath
		if fs.NArg() == 1 {
			path = fs.Arg(0)
		}
		if path == "" {
			return usageError(stderr, cmd, errors.New("check-config needs a FILE"))
		}
		cfg, err := conf.Load(path)
		if err != nil {
			fail(stderr, err)
			return 1
		}
		if err := checkSigma(cfg.Enrich.Sigma, stdout, stderr); err != nil {
			fail(stderr, cfg.At("enrich.sigma", err))
			return 1
		}
		warned := false
		if cfg.User != "root" {
			if _, err := plugin.ServiceUser(cfg.User); err != nil {
				fail(stderr, cfg.At("user", fmt.Errorf("warning: %w: the plugin would stop at start on this machine", err)))
				warned = true
			}
		}
		for _, w := range cfg.Enrich.Attack.Warnings() {
			fail(stderr, cfg.At("enrich.attack.key_map", errors.New("warning: "+w)))
			warned = true
		}
		if warned {
			return checkConfigWarning
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
		return 0
	case "print-default-config":
		_, _ = stdout.Write(conf.Example)
		return 0
	case "stats":
		return stats(*cfgPath, stdout, stderr)
	case "verdicts":
		return verdicts(*cfgPath, fs.Args(), stdout, stderr)
	case "packages":
		return usageError(stderr, cmd, errors.New(`packages: the only command is "packages status"`))
	case "packages status":
		return packagesStatus(*cfgPath, stdout, stderr)
	default: // help
		if fs.NArg() == 0 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		name := strings.Join(fs.Args(), " ")
		h, ok := commands[name]
		if !ok {
			return usageError(stderr, "", fmt.Errorf("help: unknown command %q", name))
		}
		fmt.Fprint(stdout, h.usage)
		return 0
	}
}

// loadConfig loads path, or the default path when it exists, or the
// built-in config.
func loadConfig(path string, useDefaultPath bool) (*conf.Config, string, error) {
	if path == "" && useDefaultPath {
		if _, err := os.Stat(conf.DefaultPath); err == nil {
			path = conf.DefaultPath
		}
	}
	if path == "" {
		return conf.Builtin(), "", nil
	}
	c, err := conf.Load(path)
	return c, path, err
}

func plugMode(cfgPath string, stdin io.Reader, stderr io.Writer) int {
	cfg, path, err := loadConfig(cfgPath, true)
	if err != nil {
		fail(stderr, err)
		// auditd leaves the plugin's stderr unusable: say it in syslog
		// too, unless a person runs the plugin on a terminal.
		if !isTerminal(stderr) {
			plugin.SyslogStartError("config failed to load", err)
		}
		return 1
	}
	log := plugin.NewLogger(cfg.Log.Level, cfg.Log.Syslog)
	slog.SetDefault(log) // packages that log through slog.Default reach syslog too
	if err := plugin.Live(cfg, path, log, stdin); err != nil {
		log.Error("fatal", "err", err)
		return 1
	}
	return 0
}

// replayProcs is how many cores replay runs Go code on (GOMAXPROCS) unless
// the GOMAXPROCS environment variable says otherwise. One: measured on two
// cores (docs/performance.md, issue 20), a second core did not make replay
// clearly faster, cost as much CPU or more, and made every page fault of
// the growing heap a TLB shootdown on the other core. max_procs is plugin
// mode's setting and does not apply here.
const replayProcs = 1

// replayGCPercent is replay's GOGC unless the GOGC environment variable
// says otherwise. Since the parser reuses its slabs, replay allocates a
// quarter of what it did, so collecting at half the live heap's growth
// instead of all of it costs little: on the corpus (docs/performance.md)
// 50 gave 6.4-6.8k minor faults and 36-37 MB peak RSS against 7.5-8.3k and
// 40-43.6 MB with the runtime's 100, for about 9 % of the CPU in the
// collector against 5-8 %; 25 cost 17-38 %.
const replayGCPercent = 50

func replay(cfgPath, cpuProfile string, files []string, stdin io.Reader, stderr io.Writer) int {
	if len(files) == 0 && isTerminal(stdin) {
		fail(stderr, errors.New("replay: no FILE given and stdin is a terminal: name audit logs "+
			"(audisp-enrich replay /var/log/audit/audit.log) or pipe records in (ausearch --raw | audisp-enrich replay); "+
			"FILE - reads the terminal"))
		return 2
	}
	cfg, _, err := loadConfig(cfgPath, false)
	if err != nil {
		fail(stderr, err)
		return 1
	}
	// /proc describes this host now, not the host and time of the log.
	cfg.Enrich.Proc.ProcFallback = false
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(replayProcs)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(replayGCPercent)
	}
	if cpuProfile != "" {
		stopProfile, err := startCPUProfile(cpuProfile)
		if err != nil {
			fail(stderr, err)
			return 1
		}
		defer func() {
			if err := stopProfile(); err != nil {
				fail(stderr, err)
			}
		}()
	}
	log := plugin.NewLogger(cfg.Log.Level, false)
	slog.SetDefault(log)
	ctx, stop := stopOnSignal()
	defer stop()
	opt := plugin.ReplayOptions{Stdin: stdin, Warn: func(err error) { fail(stderr, err) }}
	if isTerminal(stderr) {
		opt.Progress = stderr
		// The stdout sink writes to os.Stdout: pass what it writes
		// through a pipe that counts the documents for the summary.
		sum, done, err := summarizeStdout()
		if err != nil {
			fail(stderr, err)
			return 1
		}
		defer func() { done(); sum.write(stderr) }()
		opt.Counts = func(c plugin.ReplayCounts) { sum.input = &c }
	}
	err = plugin.Replay(ctx, cfg, log, files, opt)
	if sig, ok := context.Cause(ctx).(interrupted); ok {
		// What the sinks got before the signal stays written, and the
		// summary (deferred) counts it.
		fail(stderr, sig)
		return 128 + int(sig.Signal)
	}
	if err != nil {
		if !errors.Is(err, plugin.ErrFilesFailed) { // those were reported one by one
			fail(stderr, err)
		}
		return 1
	}
	return 0
}

// interrupted is the cause of replay's context when SIGINT or SIGTERM
// stopped it.
type interrupted struct{ syscall.Signal }

func (i interrupted) Error() string {
	if i.Signal == syscall.SIGINT {
		return "interrupted by SIGINT"
	}
	return "interrupted by SIGTERM"
}

// stopOnSignal returns a context that SIGINT or SIGTERM cancels with an
// interrupted cause; stop releases the signals.
func stopOnSignal() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(interrupted{s.(syscall.Signal)})
		}
	}()
	return ctx, func() { signal.Stop(sigs); close(sigs); cancel(nil) }
}

// startCPUProfile starts the runtime's CPU profiler writing to path; the
// function it returns stops it and closes the file (make profile reads the
// result with go tool pprof).
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", path, err)
		}
		return nil
	}, nil
}

// summarizeStdout replaces os.Stdout by a pipe whose reader copies to the
// real stdout and counts the documents; done closes the pipe, waits for
// the copy and restores os.Stdout.
func summarizeStdout() (*summary, func(), error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	real, sum := os.Stdout, newSummary()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if sum.copy(real, r) != nil {
			_, _ = io.Copy(io.Discard, r) // stdout is gone; do not block the sink
		}
	}()
	os.Stdout = w
	return sum, func() {
		w.Close()
		<-copied
		r.Close()
		os.Stdout = real
	}, nil
}

// isTerminal reports whether v is an *os.File open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

func stats(cfgPath string, stdout, stderr io.Writer) int {
	cfg, _, err := loadConfig(cfgPath, true)
	if err != nil {
		fail(stderr, err)
		return 1
	}
	if err := plugin.PrintStats(cfg, stdout); err != nil {
		fail(stderr, err)
		return 1
	}
	return 0
}

// packagesStatus prints the state of the package index: the persisted
// hashes checked against the package database now (nothing is hashed).
// Exit status 1 when the index is off or the database cannot be read.
func packagesStatus(cfgPath string, stdout, stderr io.Writer) int {
	cfg, _, err := loadConfig(cfgPath, true)
	if err != nil {
		fail(stderr, err)
		return 1
	}
	pc := cfg.Enrich.Packages
	if !pc.Enabled {
		fail(stderr, errors.New("the package index is off ([enrich.packages] enabled = false)"))
		return 1
	}
	st, err := packages.Inspect(pc)
	if err != nil {
		fail(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, st.String())
	return 0
}
