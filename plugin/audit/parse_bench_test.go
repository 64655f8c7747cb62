package audit

import (
	"bufio"
	"os"
	"testing"
)

// BenchmarkParse: parsing the lines of $AUDISP_ENRICH_CORPUS (make
// corpus), or of testdata/*.log, releasing each record at once; ns/op is
// per line.
func BenchmarkParse(b *testing.B) {
	var lines []string
	if c := os.Getenv("AUDISP_ENRICH_CORPUS"); c != "" {
		f, err := os.Open(c)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	} else {
		lines = fixtureLines(b)
	}
	var p Parser
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if r, err := p.Parse(lines[i%len(lines)]); err == nil {
			r.release()
		}
		i++
	}
}
