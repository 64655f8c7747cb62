package hunt

import (
	"context"
	"os/user"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

func hits(t *testing.T, e *Enricher, event *audit.Event) []string {
	t.Helper()
	if err := e.Enrich(context.Background(), event); err != nil {
		t.Fatalf("Enrich: %v", err)
	}
	var names []string
	for _, h := range event.Hunt {
		names = append(names, h.Rule)
	}
	return names
}

// conditionCase is a rule with one kind of condition and an event that
// it matches or not.
type conditionCase struct {
	name string
	rule RuleConfig
	ev   ev
	want bool
}

// conditionCases are TestConditionKinds' cases: every condition kind
// alone, matching and not.
var conditionCases = []conditionCase{
	{"exec yes", RuleConfig{Exec: true}, ev{exe: "/usr/bin/ls"}, true},
	{"exec no: open", RuleConfig{Exec: true}, ev{syscall: "2", exe: "/usr/bin/ls"}, false},
	{"exec yes: lone IMA record", RuleConfig{Exec: true}, ev{syscall: "ima", exe: "/tmp/kaiten.bin"}, true},

	{"exe glob", RuleConfig{Exe: []string{"/opt/*/bin/*"}}, ev{exe: "/opt/app/bin/x"}, true},
	{"exe glob * stops at /", RuleConfig{Exe: []string{"/opt/*"}}, ev{exe: "/opt/app/bin/x"}, false},
	{"exe exact", RuleConfig{Exe: []string{"/usr/bin/python3"}}, ev{exe: "/usr/bin/python3"}, true},
	{"exe regex", RuleConfig{ExeRegex: []string{`^/var/www/.*\.(php|phtml)$`}}, ev{exe: "/var/www/html/up/a.phtml"}, true},
	{"exe regex no", RuleConfig{ExeRegex: []string{`^/var/www/`}}, ev{exe: "/usr/bin/php"}, false},
	{"exe glob or regex", RuleConfig{Exe: []string{"/nope"}, ExeRegex: []string{`^/usr/`}}, ev{exe: "/usr/bin/php"}, true},
	{"exe unknown", RuleConfig{ExeRegex: []string{`.*`}}, ev{exe: "(null)", syscall: "2"}, false},
	{"exe_not excludes", RuleConfig{Exec: true, ExeNot: []string{"/usr/bin/*"}}, ev{exe: "/usr/bin/ls"}, false},
	{"exe_not regex excludes", RuleConfig{Exec: true, ExeNotRegex: []string{`^/usr/`}}, ev{exe: "/usr/bin/ls"}, false},
	{"exe_not passes", RuleConfig{Exec: true, ExeNot: []string{"/usr/bin/*"}}, ev{exe: "/opt/ls"}, true},
	{"exe_name", RuleConfig{ExeName: []string{"nc.*"}}, ev{exe: "/usr/bin/nc.openbsd"}, true},
	{"exe_name no", RuleConfig{ExeName: []string{"nc"}}, ev{exe: "/usr/bin/ncat"}, false},

	{"exe_in_temp /tmp", RuleConfig{ExeInTemp: true}, ev{exe: "/tmp/x"}, true},
	{"exe_in_temp /dev/shm deep", RuleConfig{ExeInTemp: true}, ev{exe: "/dev/shm/.a/b"}, true},
	{"exe_in_temp /var/tmp", RuleConfig{ExeInTemp: true}, ev{exe: "/var/tmp/java"}, true},
	{"exe_in_temp lookalike", RuleConfig{ExeInTemp: true}, ev{exe: "/tmpfoo/x"}, false},
	{"exe_in_temp /usr/tmp", RuleConfig{ExeInTemp: true}, ev{exe: "/usr/tmp/x"}, false},
	{"exe_in_temp unclean", RuleConfig{ExeInTemp: true}, ev{exe: "/usr/../tmp/x"}, true},
	{"exe_hidden dir", RuleConfig{ExeHidden: true}, ev{exe: "/opt/.hidden/foo"}, true},
	{"exe_hidden basename", RuleConfig{ExeHidden: true}, ev{exe: "/home/u/.x"}, true},
	{"exe_hidden no", RuleConfig{ExeHidden: true}, ev{exe: "/usr/lib/x.so.1"}, false},
	{"exe_outside_system_dirs", RuleConfig{ExeOutsideSystemDirs: true}, ev{exe: "/opt/app/sudo"}, true},
	{"exe_outside_system_dirs in /usr/bin", RuleConfig{ExeOutsideSystemDirs: true}, ev{exe: "/usr/bin/sudo"}, false},
	{"exe_outside_system_dirs in /usr/libexec", RuleConfig{ExeOutsideSystemDirs: true}, ev{exe: "/usr/libexec/x/y"}, false},
	{"exe_outside_system_dirs /usr/binx", RuleConfig{ExeOutsideSystemDirs: true}, ev{exe: "/usr/binx/sudo"}, true},

	{"file glob", RuleConfig{File: []string{"/etc/ld.so.preload"}}, ev{syscall: "2", exe: "/usr/bin/vi", paths: []string{"/etc/ld.so.preload"}}, true},
	{"file relative joined to cwd", RuleConfig{File: []string{"/tmp/x/*.sh"}}, ev{syscall: "2", exe: "/usr/bin/vi", cwd: "/tmp/x", paths: []string{"./a.sh"}}, true},
	{"file regex", RuleConfig{FileRegex: []string{`/cron`}}, ev{syscall: "2", exe: "/usr/bin/vi", paths: []string{"/etc/cron.d/x"}}, true},
	{"file no", RuleConfig{File: []string{"/etc/*"}}, ev{syscall: "2", exe: "/usr/bin/vi", paths: []string{"/home/a/b"}}, false},
	{"file from IMA record", RuleConfig{File: []string{"/tmp/*"}}, ev{syscall: "ima", exe: "/tmp/kaiten.bin"}, true},
	{"file_in_temp", RuleConfig{FileInTemp: true}, ev{syscall: "2", exe: "/usr/bin/cp", paths: []string{"/usr/bin/cp", "/dev/shm/x"}}, true},
	{"file_in_temp no", RuleConfig{FileInTemp: true}, ev{syscall: "2", exe: "/usr/bin/cp", paths: []string{"/home/a"}}, false},
	{"file_hidden", RuleConfig{FileHidden: true}, ev{syscall: "2", exe: "/usr/bin/cp", paths: []string{"/var/www/.x/sh"}}, true},
	{"file_hidden relative dot", RuleConfig{FileHidden: true}, ev{syscall: "2", exe: "/usr/bin/cp", cwd: "/srv", paths: []string{"./a"}}, false},

	{"users by ENRICHED name", RuleConfig{Users: []string{"www-data"}}, ev{exe: "/bin/sh", uid: 33, user: "www-data"}, true},
	{"users by local uid (RAW)", RuleConfig{Users: []string{"www-data"}}, ev{exe: "/bin/sh", uid: 33}, true},
	{"users: name wins over uid", RuleConfig{Users: []string{"www-data"}}, ev{exe: "/bin/sh", uid: 33, user: "alice"}, false},
	{"users no", RuleConfig{Users: []string{"www-data"}}, ev{exe: "/bin/sh", uid: 1000, user: "alice"}, false},
	{"users unknown locally", RuleConfig{Users: []string{"svc-x"}}, ev{exe: "/bin/sh", uid: 33}, false},
	{"uids range", RuleConfig{UIDs: []string{"1-999"}}, ev{exe: "/bin/sh", uid: 999, user: "postgres"}, true},
	{"uids range no", RuleConfig{UIDs: []string{"1-999"}}, ev{exe: "/bin/sh", uid: 0, user: "root"}, false},
	{"uids single", RuleConfig{UIDs: []string{"65534"}}, ev{exe: "/bin/sh", uid: 65534}, true},
	{"users or uids", RuleConfig{Users: []string{"nginx"}, UIDs: []string{"33"}}, ev{exe: "/bin/sh", uid: 33, user: "www-data"}, true},

	{"parent_exe", RuleConfig{ParentExe: []string{"/usr/sbin/*"}}, ev{exe: "/bin/sh", parent: "/usr/sbin/apache2"}, true},
	{"parent_name", RuleConfig{ParentName: []string{"php-fpm*"}}, ev{exe: "/bin/sh", parent: "/usr/sbin/php-fpm8.2"}, true},
	{"parent no", RuleConfig{ParentName: []string{"nginx"}}, ev{exe: "/bin/sh", parent: "/usr/bin/bash"}, false},
	{"parent unknown", RuleConfig{ParentName: []string{"nginx"}}, ev{exe: "/bin/sh"}, false},
	{"parent_name by comm", RuleConfig{ParentName: []string{"php-fpm*"}}, ev{exe: "/bin/sh", parent: "comm:php-fpm8.2"}, true},
	{"parent_name by comm no", RuleConfig{ParentName: []string{"nginx"}}, ev{exe: "/bin/sh", parent: "comm:php-fpm8.2"}, false},
	{"parent_exe needs the path", RuleConfig{ParentExe: []string{"*"}}, ev{exe: "/bin/sh", parent: "comm:nginx"}, false},
	{"parent_exe or parent_name by comm", RuleConfig{ParentExe: []string{"/usr/sbin/*"}, ParentName: []string{"nginx"}},
		ev{exe: "/bin/sh", parent: "comm:nginx"}, true},

	{"ancestor_name parent", RuleConfig{AncestorName: []string{"nginx"}}, ev{exe: "/usr/bin/ls", parent: "/usr/sbin/nginx"}, true},
	{"ancestor_name grandparent", RuleConfig{AncestorName: []string{"erl_child_setup"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}}, true},
	{"ancestor_name glob", RuleConfig{AncestorName: []string{"php-fpm*"}},
		ev{exe: "/usr/bin/id", parent: "/usr/bin/dash", ancestors: []string{"/usr/sbin/php-fpm8.2"}}, true},
	{"ancestor_name by comm", RuleConfig{AncestorName: []string{"php-fpm*"}},
		ev{exe: "/usr/bin/id", parent: "/usr/bin/dash", ancestors: []string{"comm:php-fpm8.2"}}, true},
	{"ancestor_name by the parent's comm", RuleConfig{AncestorName: []string{"nginx"}}, ev{exe: "/usr/bin/ls", parent: "comm:nginx"}, true},
	{"ancestor_exe needs the path", RuleConfig{AncestorExe: []string{"*"}},
		ev{exe: "/usr/bin/ls", parent: "comm:sh", ancestors: []string{"comm:nginx"}}, false},
	{"ancestor_exe", RuleConfig{AncestorExe: []string{"/usr/lib/erlang/erts-*/bin/*"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}}, true},
	{"ancestor_exe unclean", RuleConfig{AncestorExe: []string{"/usr/sbin/nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/sbin/../sbin/nginx"}}, true},
	{"ancestor_exe or ancestor_name", RuleConfig{AncestorExe: []string{"/opt/*"}, AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/sbin/nginx"}}, true},
	{"ancestor none of the chain", RuleConfig{AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/usr/bin/bash", ancestors: []string{"/usr/sbin/sshd"}}, false},
	{"ancestor past the default depth", RuleConfig{AncestorName: []string{"beam.smp"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/lib/erlang/erts-13.2/bin/erl_child_setup", "/usr/lib/erlang/erts-13.2/bin/beam.smp"}}, false},
	{"ancestor_depth 3", RuleConfig{AncestorName: []string{"beam.smp"}, AncestorDepth: 3},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/lib/erlang/erts-13.2/bin/erl_child_setup", "/usr/lib/erlang/erts-13.2/bin/beam.smp"}}, true},
	{"ancestor_depth 1: the parent only", RuleConfig{AncestorName: []string{"nginx"}, AncestorDepth: 1},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/sbin/nginx"}}, false},
	{"ancestor unknown counts towards the depth", RuleConfig{AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"", "/usr/sbin/nginx"}}, false},
	{"ancestor past an unknown one", RuleConfig{AncestorName: []string{"nginx"}, AncestorDepth: 3},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"", "/usr/sbin/nginx"}}, true},
	{"ancestor chain shorter than the depth", RuleConfig{AncestorName: []string{"nginx"}, AncestorDepth: 16},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/sbin/nginx"}}, true},
	{"ancestry absent", RuleConfig{AncestorName: []string{"*"}}, ev{exe: "/usr/bin/ls"}, false},
	{"ancestry off: the parent alone", RuleConfig{AncestorName: []string{"nginx"}}, ev{exe: "/usr/bin/ls", parent: "/usr/sbin/nginx", noAncestry: true}, true},
	{"ancestry off: no grandparent", RuleConfig{AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/sbin/nginx"}, noAncestry: true}, false},
	{"parent and ancestor both hold", RuleConfig{ParentName: []string{"sh"}, AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/bin/sh", ancestors: []string{"/usr/sbin/nginx"}}, true},
	{"parent and ancestor: parent fails", RuleConfig{ParentName: []string{"sh"}, AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/usr/sbin/nginx"}, false},
	{"parent and ancestor: ancestor fails", RuleConfig{ParentName: []string{"bash"}, AncestorName: []string{"nginx"}},
		ev{exe: "/usr/bin/ls", parent: "/usr/bin/bash", ancestors: []string{"/usr/bin/tmux"}}, false},

	{"key glob", RuleConfig{Key: []string{"T1059*"}}, ev{exe: "/bin/sh", key: "T1059.004_shell"}, true},
	{"key second of several", RuleConfig{Key: []string{"susp_shell"}}, ev{exe: "/bin/sh", key: "exec\x01susp_shell"}, true},
	{"key none", RuleConfig{Key: []string{"*"}}, ev{exe: "/bin/sh"}, false},

	{"blocklisted", RuleConfig{Blocklisted: true}, ev{syscall: "ima", exe: "/usr/bin/x", blocked: true}, true},
	{"blocklisted no", RuleConfig{Blocklisted: true}, ev{syscall: "ima", exe: "/usr/bin/x"}, false},
	{"vt at threshold", RuleConfig{VTMaliciousMin: 3}, ev{syscall: "ima", exe: "/usr/bin/x", vt: 3}, true},
	{"vt below", RuleConfig{VTMaliciousMin: 3}, ev{syscall: "ima", exe: "/usr/bin/x", vt: 2}, false},
	{"vt pending", RuleConfig{VTMaliciousMin: 1}, ev{syscall: "ima", exe: "/usr/bin/x", vt: -1}, false},
	{"blocklisted or vt", RuleConfig{Blocklisted: true, VTMaliciousMin: 3}, ev{syscall: "ima", exe: "/usr/bin/x", vt: 9}, true},
	{"package status", RuleConfig{PackageStatus: []string{"modified", "relocated"}}, ev{syscall: "ima", exe: "/usr/bin/x", pkg: "relocated"}, true},
	{"package status other", RuleConfig{PackageStatus: []string{"modified"}}, ev{syscall: "ima", exe: "/usr/bin/x", pkg: "package"}, false},
	{"package status none", RuleConfig{PackageStatus: []string{"unowned"}}, ev{syscall: "ima", exe: "/usr/bin/x"}, false},

	{"all conditions must hold", RuleConfig{Exec: true, ExeInTemp: true, Users: []string{"www-data"}}, ev{exe: "/tmp/x", uid: 1000, user: "alice"}, false},
	{"all conditions hold", RuleConfig{Exec: true, ExeInTemp: true, Users: []string{"www-data"}}, ev{exe: "/tmp/x", uid: 33, user: "www-data"}, true},
}

// TestConditionKinds checks every condition kind alone, matching and not.
func TestConditionKinds(t *testing.T) {
	base := func(rc RuleConfig) RuleConfig {
		rc.Name, rc.Severity = "r", "low"
		return rc
	}
	for _, c := range conditionCases {
		t.Run(c.name, func(t *testing.T) {
			e := mustEnricher(t, only(base(c.rule)))
			got := len(hits(t, e, c.ev.build())) == 1
			if got != c.want {
				t.Errorf("match = %v, want %v", got, c.want)
			}
		})
	}
}

// TestDefaultRules runs the built-in rules over the seeds' scenarios. Each
// case lists exactly the rules that must match.
func TestDefaultRules(t *testing.T) {
	e := mustEnricher(t, DefaultConfig())
	cases := []struct {
		name string
		ev   ev
		want []string
	}{
		// Executions from temp dirs (kaiten.bin; Rocke's miners in /tmp,
		// /var/tmp, /dev/shm).
		{"IMA: kaiten.bin from /tmp", ev{syscall: "ima", exe: "/tmp/kaiten.bin", uid: 0, user: "root"}, []string{"exec_from_temp_dir"}},
		{"miner java in /var/tmp", ev{exe: "/var/tmp/java", uid: 998, user: "archive"}, []string{"exec_from_temp_dir", "legit_name_in_temp"}},
		{"python3.11 in /dev/shm", ev{exe: "/dev/shm/python3.11", uid: 0, user: "root"}, []string{"exec_from_temp_dir", "legit_name_in_temp"}},
		{"java outside temp dirs", ev{exe: "/opt/jdk/bin/java", uid: 998, user: "archive"}, nil},
		{"kworkerds in /dev/shm", ev{exe: "/dev/shm/kworkerds", uid: 0, user: "root"}, []string{"exec_from_temp_dir", "masqueraded_system_utility"}},
		{"reading a /tmp file is no exec", ev{syscall: "2", exe: "/usr/bin/cat", paths: []string{"/tmp/x"}, user: "alice", uid: 1000}, nil},
		{"ordinary ls", ev{exe: "/usr/bin/ls", uid: 1000, user: "alice", parent: "/usr/bin/bash"}, nil},

		// Hidden directories.
		{"/opt/.hidden/foo", ev{exe: "/opt/.hidden/foo", uid: 1000, user: "alice"}, []string{"exec_from_hidden_path"}},
		{"/home/user/.hidden/bar", ev{exe: "/home/user/.hidden/bar", uid: 1000, user: "user"}, []string{"exec_from_hidden_path"}},
		{"hidden file in /tmp", ev{exe: "/tmp/.x", uid: 1000, user: "alice"}, []string{"exec_from_temp_dir", "exec_from_hidden_path"}},
		{"~/.local/bin is excepted", ev{exe: "/home/alice/.local/bin/black", uid: 1000, user: "alice"}, nil},
		{"~/.cargo/bin is excepted", ev{exe: "/root/.cargo/bin/rustc", uid: 0, user: "root"}, nil},

		// System utilities from unusual places.
		{"/opt/app/sudo", ev{exe: "/opt/app/sudo", uid: 1000, user: "alice"}, []string{"masqueraded_system_utility"}},
		{"/home/foo/su", ev{exe: "/home/foo/su", uid: 1000, user: "foo"}, []string{"masqueraded_system_utility"}},
		{"/usr/bin/sudo", ev{exe: "/usr/bin/sudo", uid: 1000, user: "alice"}, nil},
		{"/usr/local/sbin/netstat", ev{exe: "/usr/local/sbin/netstat", uid: 0, user: "root"}, nil},
		{"nix store ls", ev{exe: "/nix/store/abc-coreutils-9.4/bin/ls", uid: 1000, user: "alice"}, nil},

		// Web service accounts running shells, recon and network tools.
		{"www-data runs bash", ev{exe: "/usr/bin/bash", uid: 33, user: "www-data"}, []string{"service_account_shell"}},
		{"www-data runs bash (RAW format)", ev{exe: "/usr/bin/bash", uid: 33}, []string{"service_account_shell"}},
		{"www-data runs uname", ev{exe: "/usr/bin/uname", uid: 33, user: "www-data"}, []string{"service_account_recon"}},
		{"www-data runs id", ev{exe: "/usr/bin/id", uid: 33, user: "www-data"}, []string{"service_account_user_discovery"}},
		{"www-data runs ip", ev{exe: "/usr/sbin/ip", uid: 33, user: "www-data"}, []string{"service_account_network_discovery"}},
		{"www-data runs netstat", ev{exe: "/usr/bin/netstat", uid: 33, user: "www-data"}, []string{"service_account_connection_discovery"}},
		{"nginx runs top", ev{exe: "/usr/bin/top", uid: 101, user: "nginx"}, []string{"service_account_process_discovery"}},
		{"nobody runs su", ev{exe: "/usr/bin/su", uid: 65534, user: "nobody"}, []string{"service_account_elevation"}},
		{"www-data runs wget", ev{exe: "/usr/bin/wget", uid: 33, user: "www-data"}, []string{"service_account_network_tool"}},
		{"www-data runs socat", ev{exe: "/usr/bin/socat", uid: 33, user: "www-data"}, []string{"service_account_netcat"}},
		{"www-data runs ssh", ev{exe: "/usr/bin/ssh", uid: 33, user: "www-data"}, []string{"service_account_ssh"}},
		{"www-data runs php", ev{exe: "/usr/bin/php8.2", uid: 33, user: "www-data"}, nil},
		{"alice runs bash", ev{exe: "/usr/bin/bash", uid: 1000, user: "alice"}, nil},
		{"www-data opens a file in bash", ev{syscall: "2", exe: "/usr/bin/bash", uid: 33, user: "www-data"}, nil},

		// Servers spawning shells, netcat or discovery commands.
		{"apache runs netcat", ev{exe: "/usr/bin/nc.traditional", uid: 33, user: "www-data", parent: "/usr/sbin/apache2"},
			[]string{"service_account_netcat", "web_server_spawns_shell"}},
		{"nginx (as root) runs sh", ev{exe: "/usr/bin/dash", uid: 0, user: "root", parent: "/usr/sbin/nginx"}, []string{"web_server_spawns_shell"}},
		{"php-fpm runs sh", ev{exe: "/usr/bin/dash", uid: 1001, user: "app", parent: "/usr/sbin/php-fpm8.2"}, []string{"web_server_spawns_shell"}},
		{"broker runs ls", ev{exe: "/usr/bin/ls", uid: 120, user: "rabbitmq", parent: "/usr/lib/erlang/erts-13.2/bin/beam.smp"}, []string{"server_spawns_discovery"}},
		// OTP >= 19: a port program spawned as "ls" runs as beam.smp ->
		// erl_child_setup -> ls (/bin/sh -c execs it), so ls's parent is
		// erl_child_setup (observed with OTP 25, Debian 12).
		{"broker (OTP 19+) runs ls", ev{exe: "/usr/bin/ls", uid: 120, user: "rabbitmq", parent: "/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}, []string{"server_spawns_discovery"}},
		{"broker (OTP 19+) runs id", ev{exe: "/usr/bin/id", uid: 120, user: "rabbitmq", parent: "/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}, []string{"server_spawns_user_discovery"}},
		{"redis runs uname", ev{exe: "/usr/bin/uname", uid: 110, user: "redis", parent: "/usr/bin/redis-server"}, []string{"server_spawns_system_discovery"}},
		{"broker (OTP 19+) runs its port program", ev{exe: "/usr/lib/erlang/erts-13.2/bin/inet_gethost", uid: 120, user: "rabbitmq", parent: "/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}, nil},
		{"nginx runs find", ev{exe: "/usr/bin/find", uid: 1001, user: "app", parent: "/usr/sbin/nginx"}, []string{"server_spawns_discovery"}},
		{"bash runs sh", ev{exe: "/usr/bin/dash", uid: 1000, user: "alice", parent: "/usr/bin/bash"}, nil},
		{"nginx runs logrotate", ev{exe: "/usr/sbin/logrotate", uid: 0, user: "root", parent: "/usr/sbin/nginx"}, nil},
		// os:cmd: erl_child_setup runs sh -c "/bin/sh -s unix:cmd", and
		// dash forks even a single -c command: erl_child_setup -> sh ->
		// sh -> ls (one shell with bash as /bin/sh; OTP < 19: beam.smp
		// -> sh -> sh -> id).
		{"broker os:cmd runs ls (dash)", ev{exe: "/usr/bin/ls", uid: 120, user: "rabbitmq", parent: "/usr/bin/dash",
			ancestors: []string{"/usr/bin/dash", "/usr/lib/erlang/erts-13.2/bin/erl_child_setup", "/usr/lib/erlang/erts-13.2/bin/beam.smp"}},
			[]string{"server_spawns_discovery"}},
		{"broker os:cmd runs ls (bash as sh)", ev{exe: "/usr/bin/ls", uid: 120, user: "rabbitmq", parent: "/usr/bin/bash",
			ancestors: []string{"/usr/lib/erlang/erts-13.2/bin/erl_child_setup", "/usr/lib/erlang/erts-13.2/bin/beam.smp"}},
			[]string{"server_spawns_discovery"}},
		{"old broker os:cmd runs id", ev{exe: "/usr/bin/id", uid: 120, user: "rabbitmq", parent: "/bin/sh",
			ancestors: []string{"/bin/sh", "/usr/lib/erlang/erts-9.3/bin/beam.smp"}}, []string{"server_spawns_user_discovery"}},
		{"php-fpm's shell runs uname", ev{exe: "/usr/bin/uname", uid: 1001, user: "app", parent: "/usr/bin/dash",
			ancestors: []string{"/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm8.2"}}, []string{"server_spawns_system_discovery"}},
		{"nginx's bash runs whoami", ev{exe: "/usr/bin/whoami", uid: 1001, user: "app", parent: "/usr/bin/bash",
			ancestors: []string{"/usr/sbin/nginx"}}, []string{"server_spawns_user_discovery"}},
		{"nginx runs find (ancestry off)", ev{exe: "/usr/bin/find", uid: 1001, user: "app", parent: "/usr/sbin/nginx", noAncestry: true},
			[]string{"server_spawns_discovery"}},
		{"broker os:cmd runs ls (ancestry off)", ev{exe: "/usr/bin/ls", uid: 120, user: "rabbitmq", parent: "/bin/sh",
			ancestors: []string{"/usr/lib/erlang/erts-13.2/bin/erl_child_setup"}, noAncestry: true}, nil},
		{"ssh login shell runs ls", ev{exe: "/usr/bin/ls", uid: 1000, user: "alice", parent: "/usr/bin/bash",
			ancestors: []string{"/usr/sbin/sshd", "/usr/sbin/sshd", "/usr/sbin/sshd"}}, nil},
		{"console shell runs id", ev{exe: "/usr/bin/id", uid: 1000, user: "alice", parent: "/usr/bin/bash",
			ancestors: []string{"/usr/bin/login", "/usr/lib/systemd/systemd"}}, nil},
		{"tmux shell runs uname", ev{exe: "/usr/bin/uname", uid: 1000, user: "alice", parent: "/usr/bin/bash",
			ancestors: []string{"/usr/bin/tmux"}}, nil},
		{"three shells under nginx: past ancestor_depth", ev{exe: "/usr/bin/ls", uid: 1001, user: "app", parent: "/usr/bin/dash",
			ancestors: []string{"/usr/bin/bash", "/usr/bin/bash", "/usr/sbin/nginx"}}, nil},
		{"python under nginx runs ls", ev{exe: "/usr/bin/ls", uid: 1001, user: "app", parent: "/usr/bin/python3.11",
			ancestors: []string{"/usr/sbin/nginx"}}, nil},

		// Known-bad hashes.
		{"blocklisted hash", ev{syscall: "ima", exe: "/usr/local/bin/tool", uid: 0, user: "root", blocked: true}, []string{"blocklisted_hash"}},
		{"blocklisted from /tmp", ev{syscall: "ima", exe: "/tmp/kaiten.bin", uid: 0, blocked: true}, []string{"exec_from_temp_dir", "blocklisted_hash"}},
		{"VirusTotal malicious", ev{syscall: "ima", exe: "/usr/local/bin/tool", uid: 0, vt: 41}, []string{"virustotal_malicious"}},
		{"VirusTotal 2 engines", ev{syscall: "ima", exe: "/usr/local/bin/tool", uid: 0, vt: 2}, nil},
		{"VirusTotal pending", ev{syscall: "ima", exe: "/usr/local/bin/tool", uid: 0, vt: -1}, nil},

		// Package trust: a trojaned system binary, a renamed utility.
		{"modified sshd", ev{syscall: "ima", exe: "/usr/sbin/sshd", uid: 0, user: "root", pkg: "modified"}, []string{"package_file_modified"}},
		{"nc copied to /tmp/.x/httpd", ev{syscall: "ima", exe: "/tmp/.x/httpd", uid: 33, user: "www-data", pkg: "relocated"},
			[]string{"exec_from_temp_dir", "legit_name_in_temp", "exec_from_hidden_path", "package_file_relocated"}},
		{"package ls", ev{syscall: "ima", exe: "/usr/bin/ls", uid: 0, user: "root", pkg: "package"}, nil},
		{"unowned tool", ev{syscall: "ima", exe: "/usr/local/bin/tool", uid: 0, user: "root", pkg: "unowned"}, nil},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := hits(t, e, c.ev.build())
			if !slices.Equal(got, c.want) {
				t.Errorf("hits = %q, want %q", got, c.want)
			}
		})
		for _, r := range c.want {
			covered[r] = true
		}
	}
	for _, r := range e.Rules() {
		if !covered[r] {
			t.Errorf("built-in rule %q has no positive case", r)
		}
	}
}

// TestDefaultsResolveLocalUsers checks New resolves user names through the
// host's account database (www-data is uid 33 on Debian; any uid works).
func TestDefaultsResolveLocalUsers(t *testing.T) {
	u, err := user.Lookup("www-data")
	if err != nil {
		t.Fatalf("this test needs the www-data account (Debian base-passwd): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	e, err := New(DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hits(t, e, ev{exe: "/usr/bin/bash", uid: uid}.build()); !slices.Equal(got, []string{"service_account_shell"}) {
		t.Errorf("RAW-format bash as uid %d: hits %q", uid, got)
	}
}

func TestEnrichOutput(t *testing.T) {
	e := mustEnricher(t, DefaultConfig())
	event := ev{exe: "/usr/bin/nc.traditional", uid: 33, user: "www-data", parent: "/usr/sbin/apache2", blocked: true}.build()
	event.Severity = 1
	event.Tags = []string{"known_bad"} // already there: not repeated
	hits(t, e, event)
	wantHunt := []audit.HuntHit{
		{Rule: "service_account_netcat", Severity: 3, Tags: []string{"service_account", "network_tool"}},
		{Rule: "web_server_spawns_shell", Severity: 4, Tags: []string{"web_server_child"}},
		{Rule: "blocklisted_hash", Severity: 4, Tags: []string{"known_bad"}},
	}
	if !reflect.DeepEqual(event.Hunt, wantHunt) {
		t.Errorf("Hunt = %+v\nwant %+v", event.Hunt, wantHunt)
	}
	wantTags := []string{"known_bad", "hunt:service_account_netcat", "service_account", "network_tool",
		"hunt:web_server_spawns_shell", "web_server_child", "hunt:blocklisted_hash"}
	if !slices.Equal(event.Tags, wantTags) {
		t.Errorf("Tags = %q\nwant %q", event.Tags, wantTags)
	}
	if event.Severity != 4 {
		t.Errorf("Severity = %d, want 4", event.Severity)
	}
	// service_account_netcat names no technique; web_server_spawns_shell does.
	if len(event.Techniques) != 1 {
		t.Fatalf("Techniques = %+v", event.Techniques)
	}
	t2 := event.Techniques[0]
	if t2.ID != "T1505.003" || t2.Name != "Web Shell" || t2.ParentID != "T1505" || t2.Source != "hunt:web_server_spawns_shell" {
		t.Errorf("technique 2 = %+v", t2)
	}
	// Severity is only ever raised.
	low := mustEnricher(t, only(RuleConfig{Name: "l", Severity: "low", Exec: true}))
	event = ev{exe: "/usr/bin/ls"}.build()
	event.Severity = 3
	hits(t, low, event)
	if event.Severity != 3 {
		t.Errorf("severity lowered to %d", event.Severity)
	}
}

func TestOverrideAndDisable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = []RuleConfig{{Name: "exec_from_temp_dir", Severity: "low", Exec: true, ExeInTemp: true,
		ExeNot: []string{"/tmp/go-build*/*/*.test"}}}
	cfg.Disable = []string{"virustotal_malicious"}
	e := mustEnricher(t, cfg)
	if slices.Contains(e.Rules(), "virustotal_malicious") || e.Rules()[0] != "exec_from_temp_dir" {
		t.Fatalf("rules = %q", e.Rules())
	}
	event := ev{exe: "/tmp/x"}.build()
	hits(t, e, event)
	if len(event.Hunt) != 1 || event.Hunt[0].Severity != 1 || event.Techniques != nil {
		t.Errorf("replaced rule hit = %+v, techniques %+v", event.Hunt, event.Techniques)
	}
	if got := hits(t, e, ev{exe: "/tmp/go-build123/b001/hunt.test"}.build()); got != nil {
		t.Errorf("exception ignored: %q", got)
	}
	if got := hits(t, e, ev{syscall: "ima", exe: "/usr/bin/x", vt: 50}.build()); got != nil {
		t.Errorf("disabled rule matched: %q", got)
	}
	cfg.Disable = []string{"no_such_rule"}
	if _, err := newEnricher(cfg, testUsers, nil); err == nil || err.Error() != `hunt: disable: no rule named "no_such_rule"` {
		t.Errorf("disable unknown: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil || !c.Enabled || !c.UseDefaults {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []Config{
		{TempDirs: []string{"tmp"}},
		{TempDirs: []string{"/tmp/"}},
		{SystemDirs: []string{"/usr/../bin"}},
		{SystemDirs: []string{"/usr/lib["}},
		{Disable: []string{""}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
		if _, err := New(bad, nil); err == nil {
			t.Errorf("New(%+v) succeeded", bad)
		}
	}
}

func TestNoRulesNoHits(t *testing.T) {
	e := mustEnricher(t, only())
	if got := hits(t, e, ev{exe: "/tmp/x"}.build()); got != nil {
		t.Errorf("hits without rules: %q", got)
	}
}

func TestHiddenAndUnder(t *testing.T) {
	for p, want := range map[string]bool{
		"/a/.b/c": true, "/a/.b": true, ".x": true, "/a/b": false, "/a/b.c/d": false,
		"/a/./b": false, "../a": false, "/a/..b": true, "": false,
	} {
		if hidden(p) != want {
			t.Errorf("hidden(%q) = %v", p, !want)
		}
	}
	d := newDirSet([]string{"/usr/lib*", "/bin", "/"})
	if !d.under("/x") {
		t.Error(`"/" holds everything`)
	}
	d = newDirSet([]string{"/usr/lib*", "/bin"})
	for p, want := range map[string]bool{
		"/usr/lib/x": true, "/usr/lib64/a/b": true, "/usr/libexec/x": true, "/usr/lib": false,
		"/usr/lib/": false, "/bin/ls": true, "/binx/ls": false, "/usr/bin/ls": false, "bin/ls": false, "": false,
	} {
		if d.under(p) != want {
			t.Errorf("under(%q) = %v", p, !want)
		}
	}
}

// A second pass over the same event (the chain runs the rules that test a
// VirusTotal verdict after the lookup) adds its hits after the first
// pass's, which it keeps.
func TestSecondPassKeepsEarlierHits(t *testing.T) {
	first := mustEnricher(t, only(RuleConfig{Name: "temp", Severity: "medium", Exec: true, ExeInTemp: true, Tags: []string{"a"}}))
	second := mustEnricher(t, only(RuleConfig{Name: "vt", Severity: "high", VTMaliciousMin: 5, Tags: []string{"b"}}))
	event := ev{exe: "/tmp/x/run", vt: 9}.build()
	hits(t, first, event)
	if got := hits(t, second, event); !slices.Equal(got, []string{"temp", "vt"}) {
		t.Errorf("hits after both passes: %q, want [temp vt]", got)
	}
	if want := []string{"hunt:temp", "a", "hunt:vt", "b"}; !slices.Equal(event.Tags, want) {
		t.Errorf("tags %q, want %q", event.Tags, want)
	}
	if event.Severity != 3 {
		t.Errorf("severity %d, want 3 (high)", event.Severity)
	}
}

// TestDefaultTechniques: the ATT&CK labels of the built-in rules. A run
// from a temporary directory names no technique by itself (it is not
// Ingress Tool Transfer); a payload named like a legitimate program there
// is T1036.005, as ATT&CK's example of a miner saved as /var/tmp/java.
func TestDefaultTechniques(t *testing.T) {
	e := mustEnricher(t, DefaultConfig())
	for _, c := range []struct {
		ev   ev
		want []string // technique ids, in rule order
	}{
		{ev{exe: "/tmp/kaiten.bin", uid: 0, user: "root"}, nil},
		{ev{exe: "/var/tmp/java", uid: 998, user: "archive"}, []string{"T1036.005"}},
		{ev{exe: "/dev/shm/kworkerds", uid: 0, user: "root"}, []string{"T1036.005"}},
		{ev{exe: "/usr/bin/curl", uid: 33, user: "www-data"}, []string{"T1105"}},
	} {
		event := c.ev.build()
		if err := e.Enrich(context.Background(), event); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tech := range event.Techniques {
			ids = append(ids, tech.ID)
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("%s: techniques %v, want %v", c.ev.exe, ids, c.want)
		}
	}
}
