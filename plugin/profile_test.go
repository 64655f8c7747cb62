package plugin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// TestProfiles replays the bundled capture through one sink per profile
// and encoding: full and ecs JSON, ecs with original, ecs msgpack, audit
// text with either profile, and a GELF sink over TCP. Every document is
// valid against its profile's schema, ecs documents pass the ECS check,
// the msgpack file carries the ecs documents, the profile does not change
// audit text, and the GELF input gets every event.
func TestProfiles(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var frames [][]byte
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					f, err := br.ReadBytes(0)
					if err != nil {
						return
					}
					mu.Lock()
					frames = append(frames, f)
					mu.Unlock()
				}
			}()
		}
	}()
	file := func(name, extra string) string {
		return fmt.Sprintf("[[sink]]\nname = %q\ntype = \"file\"\n%s\n[sink.file]\npath = %q\n", name, extra, filepath.Join(dir, name))
	}
	cfgText := fmt.Sprintf("state_dir = %q\n[log]\nsyslog = false\n", dir) +
		file("full", "") + file("ecs", `profile = "ecs"`) + file("orig", "profile = \"ecs\"\noriginal = true\nreferences = true") +
		file("ecs.msgpack", "profile = \"ecs\"\nencoding = \"msgpack\"") + file("audit", `encoding = "audit"`) +
		file("audit-ecs", "profile = \"ecs\"\nencoding = \"audit\"") +
		fmt.Sprintf("[[sink]]\nname = \"gelf\"\ntype = \"gelf\"\nprofile = \"ecs\"\n[sink.gelf]\naddress = %q\ntransport = \"tcp\"\n", ln.Addr().String())
	cfg, err := conf.Parse("t.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(context.Background(), cfg, slog.New(slog.DiscardHandler), []string{"testdata/capture.log"}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	audittest.ValidateJSONLines(t, read("full"))
	for _, name := range []string{"ecs", "orig"} {
		data := read(name)
		audittest.ValidateJSONLinesAt(t, audittest.ECSSchemaPath, data)
		n := 0
		for line := range bytes.Lines(data) {
			n++
			if err := audittest.CheckECS(fields, line, "audisp_enrich"); err != nil {
				t.Errorf("%s document %d: %v", name, n, err)
			}
		}
		if n != 234 {
			t.Errorf("%s: %d documents, want 234", name, n)
		}
	}
	if !bytes.Contains(read("orig"), []byte(`"original":"type=`)) || bytes.Contains(read("ecs"), []byte(`"original"`)) {
		t.Error("event.original is not written exactly when original = true")
	}
	if n := sameDocuments(t, filepath.Join(dir, "ecs"), filepath.Join(dir, "ecs.msgpack")); n != 234 {
		t.Errorf("ecs msgpack: %d documents", n)
	}
	if !bytes.Equal(read("audit"), read("audit-ecs")) {
		t.Error("the profile changed the audit text encoding")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(frames) != 234 {
		t.Errorf("GELF input got %d messages, want 234", len(frames))
	}
	for _, f := range frames {
		if !bytes.Contains(f, []byte(`"_event_id":"`)) || !bytes.HasPrefix(f, []byte(`{"version":"1.1"`)) {
			t.Fatalf("GELF message without event id: %s", f)
		}
	}
	full, small, orig := len(read("full")), len(read("ecs")), len(read("orig"))
	t.Logf("capture, 234 events: full %d B/event, ecs %d, ecs+original+references %d", full/234, small/234, orig/234)
}
