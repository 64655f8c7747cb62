package hunt

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/enrich/proc"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// scenarioLog is auditd string-format input for the seeds' scenarios, in
// the kernel's record layout; "|" stands for the 0x1D separator of the
// ENRICHED format.
const scenarioLog = `type=SYSCALL msg=audit(1764081000.100:10): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1 pid=1943 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" key=(null)|ARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice"
type=EXECVE msg=audit(1764081000.100:10): argc=2 a0="bash" a1="-l"
type=CWD msg=audit(1764081000.100:10): cwd="/home/alice"
type=PATH msg=audit(1764081000.100:10): item=0 name="/bin/bash" inode=1 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1764081000.100:10): proctitle=62617368002D6C
type=EOE msg=audit(1764081000.100:10): 
type=INTEGRITY_RULE msg=audit(1764081001.200:11): file="/tmp/kaiten.bin" hash="sha1:48a3171d8f04c09f6d06362d4c4b995eaa97d489" ppid=1943 pid=8205 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash"|AUID="alice" UID="alice"
type=SYSCALL msg=audit(1764081001.200:11): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1943 pid=8205 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="kaiten.bin" exe="/tmp/kaiten.bin" key="exec"|ARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice"
type=EXECVE msg=audit(1764081001.200:11): argc=1 a0="./kaiten.bin"
type=CWD msg=audit(1764081001.200:11): cwd="/tmp"
type=PATH msg=audit(1764081001.200:11): item=0 name="./kaiten.bin" inode=2 dev=08:01 mode=0100755 ouid=1000 ogid=1000 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1764081001.200:11): proctitle="./kaiten.bin"
type=EOE msg=audit(1764081001.200:11): 
type=SYSCALL msg=audit(1764081002.000:20): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1 pid=3000 auid=4294967295 uid=33 gid=33 euid=33 suid=33 fsuid=33 egid=33 sgid=33 fsgid=33 tty=(none) ses=4294967295 comm="apache2" exe="/usr/sbin/apache2" key=(null)|ARCH=x86_64 SYSCALL=execve AUID="unset" UID="www-data"
type=EXECVE msg=audit(1764081002.000:20): argc=3 a0="/usr/sbin/apache2" a1="-k" a2="start"
type=EOE msg=audit(1764081002.000:20): 
type=SYSCALL msg=audit(1764081003.000:21): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=3000 pid=3001 auid=4294967295 uid=33 gid=33 euid=33 suid=33 fsuid=33 egid=33 sgid=33 fsgid=33 tty=(none) ses=4294967295 comm="nc" exe="/usr/bin/nc.traditional" key=(null)|ARCH=x86_64 SYSCALL=execve AUID="unset" UID="www-data"
type=EXECVE msg=audit(1764081003.000:21): argc=4 a0="nc" a1="-e" a2="/bin/sh" a3=3130302E36342E302E3120343434
type=EOE msg=audit(1764081003.000:21): 
type=INTEGRITY_RULE msg=audit(1764081004.000:30): file="/opt/app/sudo" hash="sha256:275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f" ppid=1943 pid=8300 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash"
type=INTEGRITY_RULE msg=audit(1764081004.000:30): file="/usr/bin/bash" hash="sha256:3d9f2889d6782537624a4e1a10e68a2ddd53e0ee8bac02676f27308f42ec6bf6" ppid=1943 pid=8300 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash"
type=SYSCALL msg=audit(1764081004.000:30): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1943 pid=8300 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="sudo" exe="/usr/bin/bash" key=(null)
type=EXECVE msg=audit(1764081004.000:30): argc=2 a0="/bin/bash" a1="/opt/app/sudo"
type=EOE msg=audit(1764081004.000:30): 
type=INTEGRITY_RULE msg=audit(1764081004.500:31): file="/opt/tools/deploy.sh" hash="sha256:275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f" ppid=1943 pid=8301 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash"
type=SYSCALL msg=audit(1764081004.500:31): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1943 pid=8301 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="deploy.sh" exe="/usr/bin/bash" key=(null)
type=EXECVE msg=audit(1764081004.500:31): argc=2 a0="/bin/bash" a1="/opt/tools/deploy.sh"
type=EOE msg=audit(1764081004.500:31): 
type=INTEGRITY_RULE msg=audit(1764081005.000:40): file=2F6465762F73686D2F2E782F6D696E6572 hash="sha256:ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015" ppid=1943 pid=8400 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash"
type=SYSCALL msg=audit(1764081006.000:50): arch=c000003e syscall=2 success=yes exit=3 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1943 pid=8500 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="vi" exe="/usr/bin/vi" key=T1053.003-Scheduled_Task-Job-Cron
type=CWD msg=audit(1764081006.000:50): cwd="/etc"
type=PATH msg=audit(1764081006.000:50): item=0 name="cron.daily/x" inode=3 dev=08:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=EOE msg=audit(1764081006.000:50): 
`

// TestScenariosThroughParser runs real audit lines through the module's
// parser and reassembler, then the proc and hunt enrichers in pool order.
func TestScenariosThroughParser(t *testing.T) {
	tb, err := proc.New(proc.Config{Enabled: true, MaxEntries: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.RulesFile = "testdata/good.toml"
	h := mustEnricher(t, cfg)

	got := map[uint32][]string{}
	parents := map[uint32]string{}
	ra := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) {
		for _, e := range []interface {
			Enrich(context.Context, *audit.Event) error
		}{tb, h} {
			if err := e.Enrich(context.Background(), ev); err != nil {
				t.Errorf("event %d: %v", ev.ID.Serial, err)
			}
		}
		got[ev.ID.Serial] = append(got[ev.ID.Serial], ev.Tags...)
		if ev.Parent != nil {
			parents[ev.ID.Serial] = ev.Parent.Executable
		}
	})
	var p audit.Parser
	for _, line := range strings.Split(strings.TrimSpace(scenarioLog), "\n") {
		r, err := p.Parse(strings.ReplaceAll(line, "|", "\x1d"))
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		ra.Push(r)
	}
	ra.Flush()

	want := map[uint32][]string{
		10: nil,
		11: {"hunt:exec_from_temp_dir", "exec_from_temp"},
		20: nil,
		21: {"hunt:service_account_netcat", "service_account", "network_tool", "hunt:web_server_spawns_shell", "web_server_child"},
		30: {"hunt:masqueraded_system_utility", "masquerading"},
		// bash is a system utility name but in /usr/bin; the script is
		// outside but not so named: no single executable meets both.
		31: nil,
		40: {"hunt:exec_from_temp_dir", "exec_from_temp", "hunt:exec_from_hidden_path", "exec_hidden_path"},
		50: {"hunt:cron_tamper"},
	}
	for serial, tags := range want {
		if !slices.Equal(got[serial], tags) {
			t.Errorf("event %d: tags %q, want %q", serial, got[serial], tags)
		}
	}
	wantParents := map[uint32]string{11: "/usr/bin/bash", 21: "/usr/sbin/apache2", 30: "/usr/bin/bash", 31: "/usr/bin/bash", 40: "/usr/bin/bash", 50: "/usr/bin/bash"}
	if !maps.Equal(parents, wantParents) {
		t.Errorf("parents %v, want %v", parents, wantParents)
	}
}
