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
	"syscall"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Usage:
  audisp-enrich [--config FILE]                 plugin mode: read auditd's stream on stdin
  audisp-enrich replay [--config FILE] [FILE...] run audit.log files (plain or .gz; - is stdin)
  audisp-enrich check-config FILE               validate a config file
  audisp-enrich print-default-config            print the documented default config
  audisp-enrich stats [--config FILE]           print the live figures of the running plugin
  audisp-enrich verdicts --config FILE [init]   fleet verdict service (init: create its topics and exit)
  audisp-enrich verdicts keygen FILE            write a verdict signing key, print its public key
  audisp-enrich --version | --help

Plugin mode reads ` + conf.DefaultPath + ` when it exists and --config is not given.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("audisp-enrich", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "", "config file")
	showVersion := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "audisp-enrich %s\n", version)
		return 0
	}
	switch cmd {
	case "":
		return plugMode(*cfgPath, stdin, stderr)
	case "replay":
		return replay(*cfgPath, fs.Args(), stdin, stderr)
	case "check-config":
		path := *cfgPath
		if fs.NArg() == 1 {
			path = fs.Arg(0)
		}
		if path == "" || fs.NArg() > 1 {
			fmt.Fprint(stderr, "usage: audisp-enrich check-config FILE\n")
			return 2
		}
		if _, err := conf.Load(path); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
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
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "audisp-enrich: unknown command %q\n%s", cmd, usage)
		return 2
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
		fmt.Fprintln(stderr, "audisp-enrich:", err)
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

func replay(cfgPath string, files []string, stdin io.Reader, stderr io.Writer) int {
	cfg, _, err := loadConfig(cfgPath, false)
	if err != nil {
		fmt.Fprintln(stderr, "audisp-enrich:", err)
		return 1
	}
	// /proc describes this host now, not the host and time of the log.
	cfg.Enrich.Proc.ProcFallback = false
	log := plugin.NewLogger(cfg.Log.Level, false)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := plugin.Replay(ctx, cfg, log, files, stdin); err != nil {
		fmt.Fprintln(stderr, "audisp-enrich:", err)
		return 1
	}
	return 0
}

func stats(cfgPath string, stdout, stderr io.Writer) int {
	cfg, _, err := loadConfig(cfgPath, true)
	if err != nil {
		fmt.Fprintln(stderr, "audisp-enrich:", err)
		return 1
	}
	if err := plugin.PrintStats(cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "audisp-enrich:", err)
		return 1
	}
	return 0
}
