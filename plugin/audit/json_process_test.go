package audit

import (
	"strings"
	"testing"
)

// TestProcessContextDocument: ancestry, container, systemd and cgroup in
// the full document, valid against the schema; a lone parent writes no
// ancestry; a cgroup without facts writes only its path.
func TestProcessContextDocument(t *testing.T) {
	pl := replay(t, []byte("type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes exit=0 ppid=20 pid=42 auid=1000 uid=0 comm=\"curl\" exe=\"/usr/bin/curl\"\n"+
		"type=EOE msg=audit(1700000000.100:5): \n"))
	ev := pl.evs[0]
	bash := &Process{PID: 20, Executable: "/usr/bin/bash", Args: []string{"bash"}}
	nginx := &Process{PID: 10, Executable: "/usr/sbin/\xffnginx"}
	id := strings.Repeat("0f", 32)
	var enc JSONEncoder
	ev.Parent, ev.Ancestry = bash, []*Process{bash, nginx}
	ev.Cgroup = &Cgroup{Path: "/kubepods/burstable/pod6f3c9b1e-2a4d-4c8b-9e7f-1a2b3c4d5e6f/" + id, ContainerID: id, PodUID: "6f3c9b1e-2a4d-4c8b-9e7f-1a2b3c4d5e6f"}
	out := enc.Append(nil, ev)
	ev.Ancestry = []*Process{bash}
	ev.Cgroup = &Cgroup{Path: "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", Unit: "foo.service", UserOf: "1000"}
	out = enc.Append(out, ev)
	ev.Cgroup = &Cgroup{Path: "/"}
	out = enc.Append(out, ev)
	validate(t, out)
	docs := splitDocs(out)
	for i, c := range []struct{ want, not []string }{
		{[]string{`"ancestry":[{"pid":20,"executable":"/usr/bin/bash"},{"pid":10,"executable":"/usr/sbin/\\xffnginx"}]`,
			`"container":{"id":"` + id + `","pod_uid":"6f3c9b1e-2a4d-4c8b-9e7f-1a2b3c4d5e6f"}`, `"escaped":["ancestry.executable"]`},
			[]string{`"systemd"`, `"runtime"`}},
		{[]string{`"systemd":{"unit":"foo.service","user_id":"1000"}`, `"cgroup":"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"`},
			[]string{`"ancestry"`, `"container"`}},
		{[]string{`"cgroup":"/"`}, []string{`"systemd"`, `"container"`}},
	} {
		for _, w := range c.want {
			if !strings.Contains(string(docs[i]), w) {
				t.Errorf("document %d lacks %s:\n%s", i, w, docs[i])
			}
		}
		for _, w := range c.not {
			if strings.Contains(string(docs[i]), w) {
				t.Errorf("document %d has %s:\n%s", i, w, docs[i])
			}
		}
	}
}
