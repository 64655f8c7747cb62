#!/bin/busybox sh
# /init of the IMA test guest (see docs/ima-test.md).
#
# The host put every file executed here into the initramfs and knows its
# SHA-256. This script loads the IMA audit policy, starts auditd with
# audisp-enrich in plugins.d, runs the scenarios, stops auditd so that the
# plugin flushes, and sends the results to the host over the second serial
# port (/dev/ttyS1) between "@@imatest-file NAME" and "@@imatest-end" lines.
#
# Each scenario execs a file that IMA has not audited yet: IMA logs one
# INTEGRITY_RULE per inode until the file changes.

/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t securityfs securityfs /sys/kernel/security
mkdir -p /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
echo 0 > /proc/sys/kernel/printk_ratelimit

OUT=/var/log/imatest
mkdir -p $OUT
say() { echo "imatest: $*"; }
fact() { echo "$*" >> $OUT/facts.txt; say "$*"; }

send_file() { # NAME PATH
	[ -f "$2" ] || return 0
	echo "@@imatest-file $1"
	cat "$2"
	echo
	echo "@@imatest-end"
}

finish() {
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	{
		send_file facts.txt $OUT/facts.txt
		send_file events.jsonl /var/log/audisp-enrich/events.jsonl
		send_file syslog /var/log/messages
		send_file parse-errors.log /var/log/audisp-enrich/parse-errors.log
		send_file auditd.stderr $OUT/auditd.stderr
		send_file audit.log /var/log/audit/audit.log
		echo "@@imatest-done"
	} > /dev/ttyS1
	say "results sent"
	poweroff -f
}

die() {
	fact "fatal=$*"
	finish
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }
fact "kernel=$(uname -r)"
fact "uptime.init=$(uptime_s)"

# The plugin logs to syslog (auditd gives plugins no stderr of their own).
syslogd -n -O /var/log/messages &

# auditd in the foreground of a background job, so that its own start-up
# errors land in a file (it connects the plugins' stderr to /dev/null). It
# loads no rules by itself.
auditd -n > $OUT/auditd.stderr 2>&1 &
i=0
until pidof audisp-enrich > /dev/null; do
	i=$((i + 1))
	[ $i -gt 100 ] && die "audisp-enrich did not start within 10 s"
	sleep 0.1
done
fact "plugin.started_after_ds=$i"
# wait_log PATTERN FACT WHAT: wait up to 30 s for the plugin to log
# PATTERN to syslog, and record how many tenths of a second that took.
wait_log() {
	i=0
	until grep -q "$1" /var/log/messages 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 300 ] && die "audisp-enrich did not $3 within 30 s"
		sleep 0.1
	done
	fact "$2=$i"
}
# A running process is not yet a plugin that dropped its privileges and
# reads its input: wait for its start-up line (scenario 8 samples its
# credentials, and a slow start must not be mistaken for a failed drop).
wait_log "audisp-enrich started" plugin.ready_after_ds "log its start"
# The package index (the guest's dpkg database holds imatest-tools) must be
# complete before the scenarios: until then every hash is "unindexed".
wait_log "packages: index complete" packages.ready_after_ds "complete its package index"

auditctl -b 8192 > /dev/null || die "auditctl -b"
auditctl -w /opt/imatest/b64dec -p x -k T1140_decode || die "auditctl -w b64dec"
auditctl -w /opt/imatest/userprog -p x -k imatest_user || die "auditctl -w userprog"

# The policy can be written once per boot (no CONFIG_IMA_WRITE_POLICY), so
# every rule goes in this single write. Nothing is audited before it.
echo "audit func=BPRM_CHECK mask=MAY_EXEC" > /sys/kernel/security/ima/policy || die "IMA policy write"
fact "ima_policy=written"
fact "uptime.ready=$(uptime_s)"

run() { # NAME PROGRAM [ARGS]
	n=$1
	shift
	say "scenario $n: $*"
	"$@"
	fact "$n.rc=$?"
}

# 3 first: its interpreter /bin/busybox must not have been exec'd yet since
# the policy was loaded (busybox sh runs its applets without exec).
run s3 /opt/imatest/script.sh
run s1 /opt/imatest/fresh
cp /payload/dropper /dev/shm/dropper
run s2 /dev/shm/dropper
run s4 "/opt/imatest/with space/hello world"
cat /payload/hello-v2 > "/opt/imatest/with space/hello world"
run s5 "/opt/imatest/with space/hello world"
run s6 /opt/imatest/b64dec
# 7: login uid of alice (1000), running as bob (1001).
# busybox su execs the -s "shell" directly, with bob's uid and groups.
(echo 1000 > /proc/self/loginuid && su -s /opt/imatest/userprog bob)
fact "s7.rc=$?"
# 9-11: package trust. imatest-tools (dpkg database in the initramfs) owns
# /usr/bin/imatest-nc and /usr/bin/imatest-ed.
run s9 /usr/bin/imatest-nc
cp /usr/bin/imatest-nc /tmp/imatest-httpd
run s10 /tmp/imatest-httpd
cat /payload/imatest-ed-v2 > /usr/bin/imatest-ed
run s11 /usr/bin/imatest-ed

# The guest's own view of the hashes, for the failure report.
sha256sum /bin/busybox /opt/imatest/fresh /opt/imatest/script.sh /opt/imatest/b64dec /opt/imatest/userprog /dev/shm/dropper "/opt/imatest/with space/hello world" \
	/usr/bin/imatest-nc /tmp/imatest-httpd /usr/bin/imatest-ed |
	sed 's/^/sha256 /' >> $OUT/facts.txt

fact "uptime.scenarios_done=$(uptime_s)"

# 8: the plugin as the kernel sees it.
P=$(pidof audisp-enrich)
fact "s8.pid=$P"
if [ -n "$P" ]; then
	grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/$P/status |
		tr -s ' \t' ' ' | sed 's/^\([A-Za-z]*\): */s8.\1=/' >> $OUT/facts.txt
	fact "s8.user=$(stat -c %U /proc/$P)"
fi

# Let the last records reach auditd, then stop it: it closes the plugin's
# stdin, and the plugin flushes its sink and exits.
sleep 0.5
A=$(pidof auditd)
kill $A
i=0
while [ -n "$(pidof auditd audisp-enrich)" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		fact "stop=timeout"
		kill -9 $(pidof auditd audisp-enrich) 2>/dev/null
		break
	fi
	sleep 0.1
done
fact "stop_ds=$i"
fact "uptime.stopped=$(uptime_s)"
finish
