package main

import (
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/audisp-enrich/audisp-enrich/enrich/sigma"
)

// checkSigma loads the configured Sigma rules for check-config: every rule
// not loaded goes to stderr (file:line: reason), then the counts per
// logsource to stdout; warnings (a directory without rule files) go to
// stderr. Skipped rules are no error; a configured path that
// cannot be read is.
func checkSigma(c sigma.Config, stdout, stderr io.Writer) error {
	if len(c.Rules) == 0 {
		return nil
	}
	s, err := sigma.Load(c.Rules)
	if err != nil {
		return err
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(stderr, "%s: warning: sigma: %s\n", progName, w)
	}
	for _, p := range s.Problems {
		fmt.Fprintf(stderr, "%s: %s (rule skipped)\n", progName, p)
	}
	sources := slices.Sorted(maps.Keys(s.Loaded))
	for k := range s.Skipped {
		if !slices.Contains(sources, k) {
			sources = append(sources, k)
		}
	}
	slices.Sort(sources)
	for _, k := range sources {
		fmt.Fprintf(stdout, "sigma: %s: %d loaded, %d skipped\n", k, s.Loaded[k], s.Skipped[k])
	}
	return nil
}
