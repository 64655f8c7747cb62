package packages

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Config configures the package index ([enrich.packages]).
type Config struct {
	// Enabled switches the enricher and its index on. Default false; the
	// shipped config turns it on.
	Enabled bool `toml:"enabled"`
	// Manager is the package database to read: "auto" (default: dpkg when
	// ROOT/var/lib/dpkg/status exists, else rpm), "dpkg" or "rpm".
	Manager string `toml:"manager"`
	// Root is the file system the database and files are read from
	// (default "/"): another root serves a container image or a test tree.
	// Event paths are taken as paths inside it.
	Root string `toml:"root"`
	// Paths limits the index to these files and the files below these
	// directories (clean absolute paths; a file is in when its listed or
	// canonical path is one of them or lies below one). Empty indexes every
	// package file.
	Paths []string `toml:"paths"`
	// RateMB bounds hashing to this many MB (10^6 bytes) per second in
	// plugin mode (replay hashes at full speed). Default 20; 0 is no bound.
	RateMB float64 `toml:"rate_mb"`
	// Refresh is how often the package database's files are checked for
	// changes (installs, upgrades); a change re-reads the database and
	// hashes what changed. A package file changed outside the package
	// manager is found when an event's hash does not match it (the
	// re-check asks for a refresh). Default 1m.
	Refresh time.Duration `toml:"refresh"`
	// StateDir holds packages.idx, the persisted hashes. Default: the
	// top-level state_dir.
	StateDir string `toml:"state_dir"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Manager: "auto", Root: "/", RateMB: 20, Refresh: time.Minute}
}

// Validate reports the first invalid option.
func (c *Config) Validate() error {
	switch c.Manager {
	case "auto", "dpkg", "rpm":
	default:
		return fmt.Errorf("packages: manager %q: want auto, dpkg or rpm", c.Manager)
	}
	if !strings.HasPrefix(c.Root, "/") {
		return fmt.Errorf("packages: root %q: not an absolute path", c.Root)
	}
	for _, p := range c.Paths {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			return fmt.Errorf("packages: paths: %q: want a clean absolute path", p)
		}
	}
	if c.RateMB < 0 {
		return errors.New("packages: rate_mb must not be negative")
	}
	if c.Refresh < time.Second {
		return errors.New("packages: refresh must be at least 1s")
	}
	if c.StateDir == "" {
		return errors.New("packages: state_dir is empty")
	}
	return nil
}

// inPaths reports whether p is one of dirs or lies below one (all when
// dirs is empty).
func inPaths(dirs []string, p string) bool {
	if len(dirs) == 0 {
		return true
	}
	for _, d := range dirs {
		if d == "/" || strings.HasPrefix(p, d) && (len(p) == len(d) || p[len(d)] == '/') {
			return true
		}
	}
	return false
}
