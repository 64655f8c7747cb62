package attack

import "strings"

// defaultKeyMap maps audit keys that carry no technique id to techniques.
// It covers the free-form keys of the Neo23x0/auditd rule set (which bfuzzy1
// shares for its self-auditing rules) where the watched files or syscalls
// leave little doubt about the technique. Keys whose rules mix unrelated
// activity or watch routine operations (sysctl, mount, time, login, session,
// network_connect_4, software_mgmt, docker, the filebeat and CrowdStrike
// agent keys, the failed-access keys ...) are deliberately left out: a wrong
// tag costs an analyst more than a missing one. For that reason these keys
// are left out too, although the rule sets name a technique for them:
// auditlog (-p wra: every ausearch or aureport read would be "Clear Linux
// or Mac System Logs"), perm_mod (every chmod/chown by a user),
// Data_Compressed (every tar and gzip), string_search (every grep) and
// delete (every rename, so every mv and editor save, would be "File
// Deletion"). A site that wants them adds them with [enrich.attack]
// key_map. The keys kept watch files whose change, or tools whose use, is
// the technique whoever does it (an admin editing sudoers still modifies
// sudo's policy). Keys are matched without regard to letter case.
var defaultKeyMap = map[string][]string{
	// Self-auditing: changes to the audit and audisp configuration and
	// running auditctl/auditd are how an intruder blinds the audit trail.
	"auditconfig":  {"T1562.012"}, // Disable or Modify Linux Audit System
	"audispconfig": {"T1562.012"},
	"audittools":   {"T1562.012"},

	// insmod/modprobe/rmmod, (f)init_module and /etc/modprobe.d.
	"modules":  {"T1547.006"}, // Kernel Modules and Extensions
	"modprobe": {"T1547.006"},

	// /etc/cron*, /var/spool/cron.
	"cron": {"T1053.003"}, // Cron

	// /etc/passwd and /etc/shadow (watched for reads too): dumping the
	// hashes, or adding an account by editing the file.
	"etcpasswd": {"T1003.008", "T1136.001"}, // /etc/passwd and /etc/shadow; Create Local Account
	// /etc/group, /etc/gshadow; passwd; groupadd/groupmod/addgroup.
	"etcgroup":            {"T1098"}, // Account Manipulation
	"passwd_modification": {"T1098"},
	"group_modification":  {"T1098"},
	// useradd/adduser create accounts, usermod/userdel change them.
	"user_modification": {"T1136.001", "T1098"},

	// /etc/sudoers and /etc/sudoers.d.
	"actions": {"T1548.003"}, // Sudo and Sudo Caching
	// su and sudo executions: both elevation mechanisms, so the parent.
	"priv_esc": {"T1548"}, // Abuse Elevation Control Mechanism

	// bash making a successful connect(): a reverse shell.
	"remote_shell": {"T1059.004"}, // Unix Shell

	// /etc/inittab, /etc/init.d, /etc/init.
	"init": {"T1037.004"}, // RC Scripts
	// /etc/ld.so.conf(.d) and /etc/ld.so.preload.
	"libpath":             {"T1574.006"}, // Dynamic Linker Hijacking
	"systemwide_preloads": {"T1574.006"},
	// /etc/pam.d, /etc/security/*.
	"pam": {"T1556.003"}, // Pluggable Authentication Modules
	// /root/.ssh writes.
	"rootkey": {"T1098.004"}, // SSH Authorized Keys
	// systemctl, /etc/systemd, unit generators (which create units at boot).
	"systemd":           {"T1543.002"}, // Systemd Service
	"systemd_generator": {"T1543.002"},
	// /etc/selinux writes: turning the MAC policy off.
	"mac_policy": {"T1562.001"}, // Disable or Modify Tools
	// shutdown, poweroff, reboot, halt.
	"power": {"T1529"}, // System Shutdown/Reboot

	// whoami, id, hostname, uname, reads of /etc/issue and /etc/hostname.
	"recon": {"T1082", "T1033"}, // System Information Discovery; System Owner/User Discovery
	// wget, curl, nc, scp, ftp, socat, tftp...: mostly tools that pull
	// files onto the host.
	"susp_activity": {"T1105"}, // Ingress Tool Transfer
	// dbus-send, gdbus and pkexec: the rule set's comments tie them to
	// CVE-2021-3560 and CVE-2021-4034 (bfuzzy1 keys the same as T1068).
	"dbus_send":  {"T1068"}, // Exploitation for Privilege Escalation
	"gdubs_call": {"T1068"},
	"pkexec":     {"T1068"},
	// ash, csh, fish, tcsh, yash, xonsh, rbash, tmux...
	"susp_shell": {"T1059.004"}, // Unix Shell
	// execve as the web server user (euid 33).
	"detect_execve_www": {"T1505.003"}, // Web Shell
	// /etc/profile(.d), /etc/bashrc, /etc/shells, csh/fish/zsh config.
	"shell_profiles": {"T1546.004"}, // Unix Shell Configuration Modification
	// ptrace POKETEXT/POKEDATA/POKEUSER and ptrace in general.
	"code_injection":     {"T1055.008"}, // Ptrace System Calls
	"data_injection":     {"T1055.008"},
	"register_injection": {"T1055.008"},
	"tracing":            {"T1055.008"},
	// memfd_create: running a binary from memory without touching disk.
	"anon_file_create": {"T1620"}, // Reflective Code Loading
	// pip, npm, gem, cpan, luarocks, pacman: the rule set's comments
	// say T1072.
	"third_party_software_mgmt": {"T1072"}, // Software Deployment Tools
	// BigFix, Chef, Salt and Otter: configuration management that runs
	// commands across a fleet.
	"soft_besclient": {"T1072"},
	"soft_chef":      {"T1072"},
	"soft_salt":      {"T1072"},
	"soft_otter":     {"T1072"},
	// QEMU, VirtualBox, virt-manager.
	"qemu":               {"T1564.006"}, // Run Virtual Instance
	"qemu-img":           {"T1564.006"},
	"qemu-kvm":           {"T1564.006"},
	"qemu-system-x86_64": {"T1564.006"},
	"virtualbox":         {"T1564.006"},
	"VBoxManage":         {"T1564.006"},
	"virt-manager":       {"T1564.006"},
	// msgget/msgctl, sem*, shm*: named after the technique.
	"Inter-Process_Communication": {"T1559"}, // Inter-Process Communication
}

// DefaultKeyMap returns a copy of the built-in key → technique map that
// Config.KeyMap is laid over.
func DefaultKeyMap() map[string][]string {
	m := make(map[string][]string, len(defaultKeyMap))
	for k, v := range defaultKeyMap {
		m[k] = append([]string(nil), v...)
	}
	return m
}

// normKey is the form keys are compared in: white space trimmed, lower case.
func normKey(k string) string { return strings.ToLower(strings.TrimSpace(k)) }

// mergeKeyMap lays over on top of the defaults and returns the result keyed
// by normKey: an entry of over replaces the default entry for the same key.
// An empty list stays, empty: the key then gets no technique, not even the
// ids written in it (see Config.KeyMap).
func mergeKeyMap(over map[string][]string) map[string][]string {
	m := make(map[string][]string, len(defaultKeyMap)+len(over))
	for k, v := range defaultKeyMap {
		m[normKey(k)] = v
	}
	for k, v := range over {
		m[normKey(k)] = v
	}
	return m
}
