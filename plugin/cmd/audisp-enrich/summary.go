package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin"
)

// summary counts what the documents written to stdout show: what replay
// prints on a terminal after the JSON Lines. It reads the documents by
// their published field names (docs/schema.md).
type summary struct {
	docs, events, verdicts, malicious, withParent int
	hashes                                        map[string]bool
	hashCount                                     int
	blocklist, techniques, hunt                   map[string]int
	input                                         *plugin.ReplayCounts // replay's, when it gave them
}

// doc is the part of an output document the summary reads.
type doc struct {
	Kind    string `json:"kind"`
	Process struct {
		Parent *struct{} `json:"parent"`
	} `json:"process"`
	Hashes []struct {
		Hex string `json:"hex"`
	} `json:"hashes"`
	Blocklist []struct {
		List string `json:"list"`
	} `json:"blocklist"`
	Threat struct {
		Technique struct {
			ID           []string `json:"id"`
			Subtechnique struct {
				ID []string `json:"id"`
			} `json:"subtechnique"`
		} `json:"technique"`
	} `json:"threat"`
	Hunt []struct {
		Rule string `json:"rule"`
	} `json:"hunt"`
	VirusTotal *struct {
		Malicious int `json:"malicious"`
	} `json:"virustotal"`
}

func newSummary() *summary {
	return &summary{hashes: map[string]bool{}, blocklist: map[string]int{}, techniques: map[string]int{}, hunt: map[string]int{}}
}

// copy writes r to w line by line and counts every JSON document in it;
// other lines are passed on uncounted.
func (s *summary) copy(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 256<<10)
	bw := bufio.NewWriterSize(w, 256<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A document longer than the buffer: pass it on uncounted.
			if _, werr := bw.Write(line); werr != nil {
				return werr
			}
			continue
		}
		if len(line) > 0 {
			s.add(line)
			if _, werr := bw.Write(line); werr != nil {
				return werr
			}
		}
		if br.Buffered() == 0 || err != nil {
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *summary) add(line []byte) {
	var d doc
	if json.Unmarshal(line, &d) != nil || d.Kind == "" {
		return
	}
	s.docs++
	switch d.Kind {
	case "audit":
		s.events++
	case "verdict":
		s.verdicts++
		if d.VirusTotal != nil && d.VirusTotal.Malicious > 0 {
			s.malicious++
		}
	}
	if d.Process.Parent != nil {
		s.withParent++
	}
	if d.Kind == "audit" { // a verdict repeats the hash it is about
		for _, h := range d.Hashes {
			s.hashCount++
			s.hashes[h.Hex] = true
		}
	}
	for _, b := range d.Blocklist {
		s.blocklist[b.List]++
	}
	// A sub-technique's technique is listed too; count the precise one.
	subs := d.Threat.Technique.Subtechnique.ID
	for _, id := range d.Threat.Technique.ID {
		if !slices.ContainsFunc(subs, func(sub string) bool { return strings.HasPrefix(sub, id+".") }) {
			s.techniques[id]++
		}
	}
	for _, id := range subs {
		s.techniques[id]++
	}
	for _, h := range d.Hunt {
		s.hunt[h.Rule]++
	}
}

// write prints the summary, a few short lines.
func (s *summary) write(w io.Writer) {
	fmt.Fprintf(w, "%s: summary of the %d documents on stdout:\n", progName, s.docs)
	fmt.Fprintf(w, "  events %d, with a parent process %d\n", s.events, s.withParent)
	fmt.Fprintf(w, "  hashes seen %d (%d distinct)\n", s.hashCount, len(s.hashes))
	fmt.Fprintf(w, "  blocklist hits %s\n", plugin.ByCount(s.blocklist))
	fmt.Fprintf(w, "  verdicts %d (malicious %d)\n", s.verdicts, s.malicious)
	fmt.Fprintf(w, "  techniques %s\n", plugin.ByCount(s.techniques))
	fmt.Fprintf(w, "  hunting hits %s\n", plugin.ByCount(s.hunt))
	if c := s.input; c != nil {
		fmt.Fprintf(w, "  input lines %d: records %d, rejected %s\n", c.Lines, c.Records, plugin.ByCount(c.Rejected))
		fmt.Fprintf(w, "  flagged (processed all the same) %s\n", plugin.ByCount(c.Flagged))
	}
}
