package plugin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// TestMsgpackCarriesTheJSONModel: a msgpack sink receives exactly the
// documents a JSON sink receives, in the same order.
func TestMsgpackCarriesTheJSONModel(t *testing.T) {
	dir := t.TempDir()
	cfg, err := conf.Parse("t.toml", []byte(fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "j"
type = "file"
[sink.file]
path = %q
[[sink]]
name = "m"
type = "file"
encoding = "msgpack"
[sink.file]
path = %q
`, dir, filepath.Join(dir, "e.json"), filepath.Join(dir, "e.msgpack"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(context.Background(), cfg, slog.New(slog.DiscardHandler), []string{"testdata/capture.log"}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := sameDocuments(t, filepath.Join(dir, "e.json"), filepath.Join(dir, "e.msgpack")); n != 234 {
		t.Errorf("%d documents, want 234", n)
	}
}

// sameDocuments checks that the msgpack file holds exactly the documents
// of the JSON Lines file, in order, and returns their number.
func sameDocuments(t *testing.T, jsonPath, msgpackPath string) int {
	t.Helper()
	jf, err := os.Open(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	mb, err := os.ReadFile(msgpackPath)
	if err != nil {
		t.Fatal(err)
	}
	// The file sink ends each message with a newline; msgpack values are
	// self-delimiting, so the decoder skips that byte between values.
	dec := msgpack.NewDecoder(bytes.NewReader(mb))
	sc := bufio.NewScanner(jf)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		raw, err := dec.DecodeRaw()
		if err != nil {
			t.Fatalf("document %d: msgpack: %v", n, err)
		}
		if b, err := dec.Buffered().(io.ByteReader).ReadByte(); err != nil || b != '\n' {
			t.Fatalf("document %d: no newline after msgpack value", n)
		}
		if err := audittest.SameDocument(sc.Bytes(), raw); err != nil {
			t.Fatalf("document %d: %v\njson %s", n, err, sc.Bytes())
		}
		n++
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		t.Errorf("extra msgpack data after %d documents: %v", n, err)
	}
	return n
}
