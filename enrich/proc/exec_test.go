package proc

import (
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

func TestExecRecord(t *testing.T) {
	cases := []struct {
		name string
		sc   *audit.Record
		more []*audit.Record
		want bool
	}{
		{"x86_64 execve", rec("SYSCALL", "arch", "c000003e", "syscall", "59", "success", "yes"), nil, true},
		{"x86_64 execveat", rec("SYSCALL", "arch", "c000003e", "syscall", "322", "success", "yes"), nil, true},
		{"x86_64 open", rec("SYSCALL", "arch", "c000003e", "syscall", "2", "success", "yes"), nil, false},
		{"x86_64 failed execve", rec("SYSCALL", "arch", "c000003e", "syscall", "59", "success", "no"), nil, false},
		{"i386 execve", rec("SYSCALL", "arch", "40000003", "syscall", "11", "success", "yes"), nil, true},
		{"i386 59 is not execve", rec("SYSCALL", "arch", "40000003", "syscall", "59", "success", "yes"), nil, false},
		{"aarch64 execve", rec("SYSCALL", "arch", "c00000b7", "syscall", "221", "success", "yes"), nil, true},
		{"enriched name wins", rec("SYSCALL", "arch", "ffff", "syscall", "1", "success", "yes", "@SYSCALL", "execve"), nil, true},
		{"enriched other name", rec("SYSCALL", "arch", "c000003e", "syscall", "59", "success", "yes", "@SYSCALL", "open"), nil, false},
		{"unknown arch with EXECVE", rec("SYSCALL", "arch", "ffff", "syscall", "1", "success", "yes"), []*audit.Record{rec("EXECVE", "argc", "1", "a0", "x")}, true},
		{"unknown arch without EXECVE", rec("SYSCALL", "arch", "ffff", "syscall", "1", "success", "yes"), nil, false},
		{"no SYSCALL", nil, []*audit.Record{rec("EXECVE", "argc", "1", "a0", "x")}, false},
	}
	for _, c := range cases {
		ev := &audit.Event{}
		if c.sc != nil {
			ev.Records = append(ev.Records, c.sc)
		}
		ev.Records = append(ev.Records, c.more...)
		if got := ExecRecord(ev) != nil; got != c.want {
			t.Errorf("%s: ExecRecord = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOwnCopyBounds(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = "x"
	}
	if got := ownCopy(nil, many, nil); len(got) != maxArgs {
		t.Errorf("ownCopy kept %d args, want %d", len(got), maxArgs)
	}
	long := []string{"a", strings.Repeat("b", 5000), "c"}
	got := ownCopy(nil, long, nil)
	total := 0
	for _, a := range got {
		total += len(a)
	}
	if total != maxArgsBytes || len(got) != 2 || got[0] != "a" {
		t.Errorf("ownCopy kept %d bytes in %d args", total, len(got))
	}
	if got := ownCopy(nil, nil, nil); got != nil {
		t.Error("ownCopy(nil, nil, nil) != nil")
	}
	f := []string{"/usr/bin/x", "1000"}
	var room [2]string
	if got := ownCopy(f, []string{"x", "y"}, room[:0]); f[0] != "/usr/bin/x" || f[1] != "1000" || &got[0] != &room[0] || got[1] != "y" {
		t.Errorf("ownCopy fields = %q, args %q (in the given room: %v)", f, got, &got[0] == &room[0])
	}
}
