#!/bin/busybox sh
# /init of the demo-capture guest (`make demo-capture`, see docs/ima-test.md).
#
# Like the IMA test's /init: IMA audit policy, auditd, then a short attack
# story whose audit.log becomes plugin/testdata/demo/capture.log. The rule
# keys are the ATT&CK-named keys of the Linux Magazine article on auditd
# and ATT&CK. audit.log goes back over /dev/ttyS1.

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
OUT=/var/log/imatest
mkdir -p $OUT /etc/cron.daily
fact() { echo "$*" >> $OUT/facts.txt; echo "demo: $*"; }

finish() {
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	{
		for f in facts.txt:$OUT/facts.txt audit.log:/var/log/audit/audit.log; do
			echo "@@imatest-file ${f%%:*}"
			cat "${f#*:}"
			echo
			echo "@@imatest-end"
		done
		echo "@@imatest-done"
	} > /dev/ttyS1
	poweroff -f
}
die() {
	fact "fatal=$*"
	finish
}

auditd -n > $OUT/auditd.stderr 2>&1 &
i=0
until [ -S /var/run/audispd_events ] || [ -n "$(pidof audisp-enrich)" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && die "auditd did not start within 10 s"
	sleep 0.1
done
auditctl -b 8192 > /dev/null || die "auditctl -b"
# The article's rules, keys as it writes them.
for b in wget curl base64; do
	auditctl -w /usr/bin/$b -p x -k T1140-Deobfuscate-Decode-Files-or-Information || die "watch $b"
done
auditctl -w /etc/cron.daily/ -p wa -k "T1053.003-Scheduled Task-Job-Cron" || die "watch cron.daily"
auditctl -w /etc/ld.so.preload -p wa -k T1574.006-Hijack-Execution-Flow-Dynamic-Linker-Hijacking || die "watch ld.so.preload"
echo "audit func=BPRM_CHECK mask=MAY_EXEC" > /sys/kernel/security/ima/policy || die "IMA policy write"
fact "ready"

# A web server whose child shell downloads and decodes a payload:
# nginx -> bash -> curl (each a fork and execve of the next; /usr/bin/bash,
# since busybox --install puts its own applets into /bin).
/usr/sbin/nginx
/usr/bin/wget
/usr/bin/base64
# The payload runs from /tmp and /dev/shm under kernel-thread names.
cp /payload/kworkerds /tmp/kworkerds
/tmp/kworkerds
cp /payload/kswapd0 /dev/shm/kswapd0
/dev/shm/kswapd0
# A system utility's name outside the system directories.
/opt/demo/sshd
# Persistence: a cron job and the dynamic linker's preload list.
echo "*/5 * * * * root /tmp/kworkerds" > /etc/cron.daily/kworker
: > /etc/ld.so.preload
rm -f /etc/ld.so.preload
fact "scenarios=done"

sleep 0.5
kill $(pidof auditd)
i=0
while [ -n "$(pidof auditd audisp-enrich)" ] && [ $i -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
done
finish
