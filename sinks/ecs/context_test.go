package ecs_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/sinks/ecs"
)

// TestProcessContext: the process table's context (parent command line,
// ancestry, container, Kubernetes pod, systemd unit, user unit) in ECS
// names, valid against the schema and Elastic's field list, and mapped by
// the index template.
func TestProcessContext(t *testing.T) {
	fields := audittest.ECSFieldsOrSkip(t)
	line := `type=SYSCALL msg=audit(1700000000.100:7): arch=c000003e syscall=59 success=yes exit=0 ppid=20 pid=42 auid=1000 uid=0 comm="curl" exe="/usr/bin/curl"`
	var p audit.Parser
	rec, err := p.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	mapped := templateMappings(t)
	id := strings.Repeat("0f", 32)
	bash := &audit.Process{PID: 20, Executable: "/usr/bin/bash", Args: []string{"bash", "-c", "curl x\xff"}}
	nginx := &audit.Process{PID: 10, Executable: "/usr/sbin/nginx"}
	for _, c := range []struct {
		name string
		set  func(ev *audit.Event)
		want map[string]any
		not  []string
	}{
		{"container in a pod, ancestry", func(ev *audit.Event) {
			ev.Parent = bash
			ev.Ancestry = []*audit.Process{bash, nginx}
			ev.Cgroup = &audit.Cgroup{Path: "/kubepods/x", ContainerID: id, Runtime: "containerd", PodUID: "6f3c9b1e-2a4d-4c8b-9e7f-1a2b3c4d5e6f"}
		}, map[string]any{
			"process.parent.executable":   "/usr/bin/bash",
			"process.parent.command_line": `bash -c curl x\xff`,
			"container.id":                id,
			"container.runtime":           "containerd",
			"orchestrator.resource.type":  "pod",
			"orchestrator.resource.id":    "6f3c9b1e-2a4d-4c8b-9e7f-1a2b3c4d5e6f",
			"audisp_enrich.ancestry":      []any{"/usr/bin/bash", "/usr/sbin/nginx"},
			"audisp_enrich.escaped":       []any{"process.parent.args", "process.parent.command_line"},
		}, []string{"service", "cgroup"}},
		{"user unit, parent only", func(ev *audit.Event) {
			ev.Parent = nginx
			ev.Ancestry = []*audit.Process{nginx}
			ev.Cgroup = &audit.Cgroup{Path: "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", Unit: "foo.service", UserOf: "1000"}
		}, map[string]any{
			"service.name":                  "foo.service",
			"audisp_enrich.service_user_id": "1000",
		}, []string{"ancestry", "container", "command_line"}},
		{"parent without executable: name from its comm", func(ev *audit.Event) {
			fpm := &audit.Process{PID: 20, Comm: "php-fpm8.2", Args: []string{"php-fpm: pool www"}}
			ev.Parent = fpm
			ev.Ancestry = []*audit.Process{fpm, nginx}
		}, map[string]any{
			"process.parent.name":         "php-fpm8.2",
			"process.parent.executable":   nil, // unknown: not made up
			"process.parent.command_line": "php-fpm: pool www",
			"audisp_enrich.ancestry":      []any{"", "/usr/sbin/nginx"},
		}, []string{"comm"}},
	} {
		ev := &audit.Event{ID: audit.EventID{Sec: 1700000000, Msec: 100, Serial: 7}, Records: []*audit.Record{rec}}
		c.set(ev)
		out := ecs.Encode(nil, ev, ecs.Options{})
		if n := check(t, fields, out); n != 1 {
			t.Fatalf("%s: %d documents", c.name, n)
		}
		checkMapped(t, mapped, out)
		var doc map[string]any
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		for path, want := range c.want {
			var got any = doc
			for _, k := range strings.Split(path, ".") {
				m, _ := got.(map[string]any)
				got = m[k]
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			if !bytes.Equal(gj, wj) {
				t.Errorf("%s: %s = %s, want %s\n%s", c.name, path, gj, wj, out)
			}
		}
		for _, k := range c.not {
			if bytes.Contains(out, []byte(`"`+k+`"`)) {
				t.Errorf("%s: %q written:\n%s", c.name, k, out)
			}
		}
	}
}
