# --- common.sh: shared by every maintainer script (inlined at build time) ---
AE_USER=audisp-enrich
AE_STATE=/var/lib/audisp-enrich
AE_LOGS=/var/log/audisp-enrich
AE_ETC=/etc/audisp-enrich
AE_PLUGIN_SRC=/usr/share/audisp-enrich/plugins.d/audisp-enrich.conf
AE_PLUGIN_NAME=audisp-enrich.conf

# ae_conf_plugin_dir prints plugin_dir of /etc/audit/auditd.conf (audit >= 3.0;
# 2.x has no such key there) without trailing slashes, or nothing.
ae_conf_plugin_dir() {
	sed -n 's/^[[:space:]]*plugin_dir[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p' \
		/etc/audit/auditd.conf 2>/dev/null | tail -n 1 | sed 's:\(.\)/*$:\1:'
}

# ae_plugin_dir prints the plugins.d directory of the installed audit:
# auditd.conf's plugin_dir when set, else /etc/audit/plugins.d (audit >= 3.0)
# or /etc/audisp/plugins.d (audit 2.x).
ae_plugin_dir() {
	conf=$(ae_conf_plugin_dir)
	if [ -n "$conf" ]; then
		echo "$conf"
	elif [ -d /etc/audit/plugins.d ]; then
		echo /etc/audit/plugins.d
	elif [ -d /etc/audisp/plugins.d ]; then
		echo /etc/audisp/plugins.d
	else
		echo /etc/audit/plugins.d
	fi
}

# ae_install_plugin makes sure the plugins.d file exists. The file is the
# admin's once written (active, format, args, mode, comments): an existing
# one is never rewritten. One left in the other directory by an audit 2.x
# to 3.x upgrade is moved, as it is, into the directory in use. Only when
# there is none is the shipped template copied (root:root 0640). The
# temporary name starts with a dot: auditd skips hidden files.
ae_install_plugin() {
	dir=$(ae_plugin_dir)
	dest="$dir/$AE_PLUGIN_NAME"
	tmp="$dir/.$AE_PLUGIN_NAME.tmp"
	[ -d "$dir" ] || mkdir -p -m 0750 "$dir"
	for d in /etc/audit/plugins.d /etc/audisp/plugins.d; do
		[ -f "$d/$AE_PLUGIN_NAME" ] && ! [ "$d/$AE_PLUGIN_NAME" -ef "$dest" ] || continue
		if [ ! -e "$dest" ]; then
			cp -p "$d/$AE_PLUGIN_NAME" "$tmp"
			mv -f "$tmp" "$dest"
		fi
		rm -f "$d/$AE_PLUGIN_NAME"
	done
	[ -e "$dest" ] && return 0
	cp "$AE_PLUGIN_SRC" "$tmp"
	chown root:root "$tmp"
	chmod 0640 "$tmp"
	mv -f "$tmp" "$dest"
}

# ae_remove_plugin deletes the plugins.d file wherever it is.
ae_remove_plugin() {
	rm -f "/etc/audit/plugins.d/$AE_PLUGIN_NAME" "/etc/audisp/plugins.d/$AE_PLUGIN_NAME"
	conf=$(ae_conf_plugin_dir)
	if [ -n "$conf" ]; then
		rm -f "$conf/$AE_PLUGIN_NAME"
	fi
}

# ae_reload_auditd asks a running auditd to re-read its plugins; it does
# nothing when auditd does not run and never fails.
ae_reload_auditd() {
	pids=$(pidof auditd 2>/dev/null || true)
	[ -n "$pids" ] || return 0
	# "--signal reload" needs audit >= 3.1, "--signal HUP" audit 3.0.
	if command -v auditctl >/dev/null 2>&1; then
		if auditctl --signal reload >/dev/null 2>&1 || auditctl --signal HUP >/dev/null 2>&1; then
			return 0
		fi
	fi
	# audit 2.x has no "auditctl --signal": SIGHUP is auditd's reload.
	# shellcheck disable=SC2086
	kill -HUP $pids 2>/dev/null || true
}

# ae_wait_plugin_exit waits up to 5 s for the plugin named in its pid file
# to exit (auditd stops it after a reload without its plugins.d file).
ae_wait_plugin_exit() {
	pid=$(cat "$AE_STATE/audisp-enrich.pid" 2>/dev/null || true)
	case "$pid" in
	'' | *[!0-9]*) return 0 ;;
	esac
	i=0
	while [ $i -lt 50 ] && grep -qx audisp-enrich "/proc/$pid/comm" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
}
# --- end of common.sh ---
