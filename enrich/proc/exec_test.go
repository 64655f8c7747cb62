package proc

import (
	"reflect"
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

func TestArgv(t *testing.T) {
	hexf := func(name, v string) audit.Field { return audit.Field{Name: name, Raw: v, Value: v, Enc: audit.Hex} }
	// A long argument split into hex pieces, continued in a second EXECVE
	// record without argc, as the kernel does.
	r1 := rec("EXECVE", "argc", "4", "a0", "prog", "a1_len", "12")
	r1.Fields = append(r1.Fields, hexf("a1[0]", "hello "))
	r2 := rec("EXECVE")
	r2.Fields = append(r2.Fields, audit.Field{Name: "a1[1]", Raw: "776F726C64", Value: "776F726C64"}) // left undecoded
	r2.Fields = append(r2.Fields, hexf("a2", "a b"), audit.Field{Name: "a3", Value: "-x"})
	ev := &audit.Event{Records: []*audit.Record{rec("SYSCALL"), r1, r2}}
	want := []string{"prog", "hello world", "a b", "-x"}
	if got := Argv(ev, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("Argv = %q, want %q", got, want)
	}
	if got := Argv(ev, 2); !reflect.DeepEqual(got, want[:2]) {
		t.Fatalf("Argv limit 2 = %q", got)
	}
	// A forged huge index does not allocate a huge slice.
	big := &audit.Event{Records: []*audit.Record{rec("EXECVE", "a999999", "x", "a0", "y")}}
	if got := Argv(big, 0); !reflect.DeepEqual(got, []string{"y"}) {
		t.Fatalf("Argv with forged index = %q", got)
	}
}

func TestArgIndex(t *testing.T) {
	for _, c := range []struct {
		in        string
		idx       int
		piece, ok bool
	}{
		{"a0", 0, false, true}, {"a12", 12, false, true}, {"a3[0]", 3, true, true},
		{"argc", 0, false, false}, {"a1_len", 0, false, false}, {"a", 0, false, false},
		{"b1", 0, false, false}, {"a1x", 0, false, false}, {"a1234567", 0, false, false},
	} {
		idx, piece, ok := argIndex(c.in)
		if idx != c.idx || piece != c.piece || ok != c.ok {
			t.Errorf("argIndex(%q) = %d %v %v", c.in, idx, piece, ok)
		}
	}
}

func TestOwnArgsBounds(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = "x"
	}
	if got := ownArgs(many); len(got) != maxArgs {
		t.Errorf("ownArgs kept %d args, want %d", len(got), maxArgs)
	}
	long := []string{"a", strings.Repeat("b", 5000), "c"}
	got := ownArgs(long)
	total := 0
	for _, a := range got {
		total += len(a)
	}
	if total != maxArgsBytes || len(got) != 2 || got[0] != "a" {
		t.Errorf("ownArgs kept %d bytes in %d args", total, len(got))
	}
	if ownArgs(nil) != nil {
		t.Error("ownArgs(nil) != nil")
	}
}
