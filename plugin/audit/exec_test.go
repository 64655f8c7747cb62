package audit

import "testing"

// Summary.Exec recognises a successful execve or execveat: by the ENRICHED
// syscall name, by number for the arch, or by an EXECVE record for an arch
// it does not know.
func TestSummaryExec(t *testing.T) {
	const execve = "type=EXECVE msg=audit(1.000:1): argc=1 a0=\"x\""
	cases := []struct {
		name    string
		syscall string // the SYSCALL line after its stamp; "" for none
		execve  bool
		want    bool
	}{
		{"x86_64 execve", "arch=c000003e syscall=59 success=yes", false, true},
		{"x86_64 execveat", "arch=c000003e syscall=322 success=yes", false, true},
		{"x86_64 open", "arch=c000003e syscall=2 success=yes", false, false},
		{"x86_64 failed execve", "arch=c000003e syscall=59 success=no", false, false},
		{"i386 execve", "arch=40000003 syscall=11 success=yes", false, true},
		{"i386 59 is not execve", "arch=40000003 syscall=59 success=yes", false, false},
		{"aarch64 execve", "arch=c00000b7 syscall=221 success=yes", false, true},
		{"enriched name wins", "arch=ffff syscall=1 success=yes\x1dSYSCALL=execve", false, true},
		{"enriched other name", "arch=c000003e syscall=59 success=yes\x1dSYSCALL=open", false, false},
		{"unknown arch with EXECVE", "arch=ffff syscall=1 success=yes", true, true},
		{"unknown arch without EXECVE", "arch=ffff syscall=1 success=yes", false, false},
		{"no SYSCALL", "", true, false},
	}
	for _, c := range cases {
		var p Parser
		ev := &Event{}
		var lines []string
		if c.syscall != "" {
			lines = append(lines, "type=SYSCALL msg=audit(1.000:1): "+c.syscall)
		}
		if c.execve {
			lines = append(lines, execve)
		}
		for _, l := range lines {
			r, err := p.Parse(l)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			ev.Records = append(ev.Records, r)
		}
		if got := SummaryOf(ev).Exec; got != c.want {
			t.Errorf("%s: Exec = %v, want %v", c.name, got, c.want)
		}
	}
}
