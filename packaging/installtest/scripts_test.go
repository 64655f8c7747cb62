package installtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestScriptsPluginDir runs the built rpm %post and %preun (the deb
// scripts share their plugins.d code, scripts/common.sh) in a private
// mount namespace with overlays (inNamespace), so that every layout can be
// set up without touching the machine: audit 2.x (/etc/audisp/plugins.d
// only), a 2.x leftover under audit 3.x (moved as it is, active = no
// included), an existing file (the admin's: kept as it is), auditd.conf's
// plugin_dir, and no directory at all. No auditd may run meanwhile: the
// shared auditd lock is held.
func TestScriptsPluginDir(t *testing.T) {
	testsupport.SkipShort(t, "runs the maintainer scripts against a real auditd; root")
	requireRoot(t)
	pk := buildPackages(t)
	lockNoAuditd(t)

	cases := []struct {
		name, setup, check string
	}{{
		name: "audit 2.x",
		setup: `rm -rf /etc/audit/plugins.d; mkdir -p /etc/audisp/plugins.d
			sed -i '/plugin_dir/d' /etc/audit/auditd.conf 2>/dev/null || true`,
		check: `test -f /etc/audisp/plugins.d/audisp-enrich.conf || fail "not in /etc/audisp/plugins.d"
			test ! -e /etc/audit/plugins.d || fail "/etc/audit/plugins.d created"
			test "$(stat -c '%a %U %G' /etc/audisp/plugins.d/audisp-enrich.conf)" = "640 root root" || fail "mode/owner $(stat -c '%a %U %G' /etc/audisp/plugins.d/audisp-enrich.conf)"
			grep -qx 'active = yes' /etc/audisp/plugins.d/audisp-enrich.conf || fail "not active"
			ls -A /etc/audisp/plugins.d | grep -q '^\.' && fail "temp file left"`,
	}, {
		name: "audit 3.x with a 2.x leftover",
		setup: `mkdir -p /etc/audit/plugins.d /etc/audisp/plugins.d
			cp "$TMPL" /etc/audisp/plugins.d/audisp-enrich.conf`,
		check: `test -f /etc/audit/plugins.d/audisp-enrich.conf || fail "not in /etc/audit/plugins.d"
			test ! -e /etc/audisp/plugins.d/audisp-enrich.conf || fail "2.x leftover kept"`,
	}, {
		// The admin turned the plugin off under audit 2.x; audit 3.x came.
		name: "audit 3.x with a 2.x leftover set to active = no",
		setup: `mkdir -p /etc/audit/plugins.d /etc/audisp/plugins.d
			sed 's/^active = yes$/active = no/' "$TMPL" > /etc/audisp/plugins.d/audisp-enrich.conf
			cp /etc/audisp/plugins.d/audisp-enrich.conf "$DIR/want"`,
		check: `cmp /etc/audit/plugins.d/audisp-enrich.conf "$DIR/want" || fail "the 2.x file was not moved as it was: $(cat /etc/audit/plugins.d/audisp-enrich.conf)"
			test ! -e /etc/audisp/plugins.d/audisp-enrich.conf || fail "2.x leftover kept"`,
	}, {
		// An upgrade keeps every admin edit of an existing file.
		name: "admin edits",
		setup: `mkdir -p /etc/audit/plugins.d
			sed -e 's/^active = yes$/active = no/' -e 's/^format = string$/format = binary/' \
				-e 's|^args = .*|args = --config /etc/audisp-enrich/other.toml|' "$TMPL" > /etc/audit/plugins.d/audisp-enrich.conf
			echo '# admin' >> /etc/audit/plugins.d/audisp-enrich.conf
			chmod 0600 /etc/audit/plugins.d/audisp-enrich.conf
			cp /etc/audit/plugins.d/audisp-enrich.conf "$DIR/want"`,
		check: `cmp /etc/audit/plugins.d/audisp-enrich.conf "$DIR/want" || fail "admin edits lost: $(cat /etc/audit/plugins.d/audisp-enrich.conf)"
			test "$(stat -c '%a' /etc/audit/plugins.d/audisp-enrich.conf)" = 600 || fail "mode changed to $(stat -c '%a' /etc/audit/plugins.d/audisp-enrich.conf)"`,
	}, {
		// auditd.conf's plugin_dir is where auditd looks; a file in the
		// default directory (an earlier install) is moved there.
		name: "plugin_dir in auditd.conf",
		setup: `mkdir -p /etc/audit/plugins.d /etc/audit/custom.d
			sed -i '/plugin_dir/d' /etc/audit/auditd.conf 2>/dev/null || true
			echo 'plugin_dir = /etc/audit/custom.d//' >> /etc/audit/auditd.conf
			sed 's/^active = yes$/active = no/' "$TMPL" > /etc/audit/plugins.d/audisp-enrich.conf`,
		check: `grep -qx 'active = no' /etc/audit/custom.d/audisp-enrich.conf || fail "not moved to plugin_dir"
			test ! -e /etc/audit/plugins.d/audisp-enrich.conf || fail "left in /etc/audit/plugins.d"`,
	}, {
		// plugin_dir names the default directory with a trailing slash:
		// the file there is the one in use, kept.
		name: "plugin_dir with a slash",
		setup: `mkdir -p /etc/audit/plugins.d
			sed -i '/plugin_dir/d' /etc/audit/auditd.conf 2>/dev/null || true
			echo 'plugin_dir = /etc/audit/plugins.d/' >> /etc/audit/auditd.conf
			sed 's/^active = yes$/active = no/' "$TMPL" > /etc/audit/plugins.d/audisp-enrich.conf`,
		check: `grep -qx 'active = no' /etc/audit/plugins.d/audisp-enrich.conf || fail "file lost or rewritten"`,
	}, {
		name:  "no audit directory",
		setup: `rm -rf /etc/audit/plugins.d /etc/audisp`,
		check: `test "$(stat -c '%a' /etc/audit/plugins.d)" = 750 || fail "plugins.d not created 0750"
			test -f /etc/audit/plugins.d/audisp-enrich.conf || fail "not installed"`,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inNamespace(t, pk, c.setup+`
sh "$POST" 1
`+c.check+`
sh "$PREUN" 0
test ! -e /etc/audit/plugins.d/audisp-enrich.conf || fail "preun left /etc/audit/plugins.d/audisp-enrich.conf"
test ! -e /etc/audisp/plugins.d/audisp-enrich.conf || fail "preun left /etc/audisp/plugins.d/audisp-enrich.conf"
test ! -e /etc/audit/custom.d/audisp-enrich.conf || fail "preun left /etc/audit/custom.d/audisp-enrich.conf"`)
		})
	}
	if _, err := os.Lstat(pluginConf2); err == nil {
		t.Errorf("%s exists on the real /etc after the namespaced runs", pluginConf2)
	}
}

// lockNoAuditd takes the shared auditd lock for the rest of the test and
// fails when an auditd runs anyway: the scripts would signal it.
func lockNoAuditd(t *testing.T) {
	t.Helper()
	auditdtest.Lock(t)
	if out, _ := exec.Command("pgrep", "-x", "auditd").Output(); len(out) > 0 {
		t.Fatalf("an auditd runs (pid %s); the scripts would signal it", strings.TrimSpace(string(out)))
	}
}

// inNamespace runs body with sh in a private mount namespace whose /etc,
// /usr and /var are overlays on the machine's (what
// the scripts write goes to a temporary directory, $DIR), with the
// plugins.d template installed, and fails the test unless it ends well.
// body sees $TMPL (the template) and the built maintainer scripts as
// $POST, $PREUN (rpm) and $POSTINST, $POSTRM (deb), the packaged binary as
// $BIN, and may call
// fail MESSAGE.
func inNamespace(t *testing.T, pk packages, body string) {
	t.Helper()
	requireTool(t, "unshare", "util-linux")
	script := `set -e
fail() { echo "FAIL: $*"; exit 1; }
mount --make-rprivate /
for d in etc usr var; do
	mkdir -p "$DIR/$d/u" "$DIR/$d/w"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$DIR/$d/u,workdir=$DIR/$d/w" "/$d"
done
mkdir -p /usr/share/audisp-enrich/plugins.d
cp "$TMPL" /usr/share/audisp-enrich/plugins.d/audisp-enrich.conf
` + body + `
echo OK
`
	scripts := filepath.Join(pk.root, "build/pkg/scripts")
	cmd := exec.Command("unshare", "-m", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "DIR="+t.TempDir(), "TMPL="+filepath.Join(pk.root, "packaging/audisp-enrich.plugin.conf"),
		"POST="+filepath.Join(scripts, "rpm/post"), "PREUN="+filepath.Join(scripts, "rpm/preun"),
		"POSTINST="+filepath.Join(scripts, "deb/postinst"), "POSTRM="+filepath.Join(scripts, "deb/postrm"),
		"BIN="+filepath.Join(pk.root, "build/installtest/audisp-enrich"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "OK\n") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestDebPostinst runs the built deb postinst ("configure") in a private
// mount namespace (inNamespace) over the files the .deb unpacks, for the
// cases the dpkg install of TestDeb does not meet: a conffile the admin
// deleted (dpkg keeps the deletion; postinst must not fail on it) and one
// replaced by a symlink (its target keeps its owner and mode); and purge
// ("postrm purge") leaves nothing and prints nothing.
func TestDebPostinst(t *testing.T) {
	testsupport.SkipShort(t, "runs the deb maintainer scripts; root")
	requireRoot(t)
	requireTool(t, "adduser", "adduser")
	pk := buildPackages(t)
	lockNoAuditd(t)
	unpacked := `mkdir -p /etc/audisp-enrich /var/lib/audisp-enrich /var/log/audisp-enrich
		cp packaging/config.toml /etc/audisp-enrich/config.toml
		`
	configured := `test "$(stat -c '%a %U %G' /etc/audisp-enrich)" = "750 root audisp-enrich" || fail "/etc/audisp-enrich: $(stat -c '%a %U %G' /etc/audisp-enrich)"
		test "$(stat -c '%a %U %G' /var/lib/audisp-enrich)" = "750 audisp-enrich audisp-enrich" || fail "state dir: $(stat -c '%a %U %G' /var/lib/audisp-enrich)"
		test -f /etc/audit/plugins.d/audisp-enrich.conf || fail "no plugins.d file"
		`
	for _, c := range []struct{ name, setup, check string }{{
		name:  "conffile deleted",
		setup: unpacked + `rm /etc/audisp-enrich/config.toml`,
		check: configured + `test ! -e /etc/audisp-enrich/config.toml || fail "config.toml made again"`,
	}, {
		// Purge removes everything and says nothing (deluser's notes, as
		// "crontab not executed" without cron, are not errors).
		name:  "purge",
		setup: unpacked,
		check: configured + `sh "$POSTRM" purge > "$DIR/purge.out" 2>&1 || fail "postrm purge failed: $(cat "$DIR/purge.out")"
			test ! -s "$DIR/purge.out" || fail "postrm purge printed: $(cat "$DIR/purge.out")"
			! getent passwd audisp-enrich >/dev/null || fail "user left"
			! getent group audisp-enrich >/dev/null || fail "group left"
			for p in /etc/audisp-enrich /var/lib/audisp-enrich /var/log/audisp-enrich /etc/audit/plugins.d/audisp-enrich.conf; do
				test ! -e "$p" || fail "$p left"
			done`,
	}, {
		name: "conffile a symlink",
		setup: unpacked + `printf 'user = "root"\n' > "$DIR/target.toml"; chmod 0600 "$DIR/target.toml"
			ln -sf "$DIR/target.toml" /etc/audisp-enrich/config.toml`,
		check: configured + `test "$(stat -c '%a %U %G' "$DIR/target.toml")" = "600 root root" || fail "symlink target changed: $(stat -c '%a %U %G' "$DIR/target.toml")"`,
	}} {
		t.Run(c.name, func(t *testing.T) {
			inNamespace(t, pk, "cd \""+pk.root+"\"\n"+c.setup+`
sh "$POSTINST" configure 0.1.0-1 || fail "postinst configure failed"
`+c.check)
		})
	}
}

// TestManualInstallSteps follows README's "Install as an auditd plugin"
// without the package (its step 2 block run as written) in a private
// mount namespace (inNamespace): check-config passes, and the plugin, run
// as auditd runs it (root, empty environment, the capture on stdin), drops
// to the service account and writes events with exit status 0.
func TestManualInstallSteps(t *testing.T) {
	testsupport.SkipShort(t, "creates an account and runs the plugin in a mount namespace; root")
	requireRoot(t)
	requireTool(t, "useradd", "passwd")
	pk := buildPackages(t)
	step2 := testsupport.DocBlock(t, "README.md", "2. Create the service account", "```sh\n", "```")
	inNamespace(t, pk, `install -o root -g root -m 0750 "$BIN" /usr/sbin/audisp-enrich
`+step2+`
/usr/sbin/audisp-enrich print-default-config > /etc/audisp-enrich/config.toml
chgrp audisp-enrich /etc/audisp-enrich/config.toml && chmod 0640 /etc/audisp-enrich/config.toml
/usr/sbin/audisp-enrich check-config /etc/audisp-enrich/config.toml || fail "check-config: exit $?"
env -i /usr/sbin/audisp-enrich --config /etc/audisp-enrich/config.toml < "`+filepath.Join(pk.root, "plugin/testdata/capture.log")+`" > "$DIR/out" 2> "$DIR/err" ||
	fail "plugin: exit $?: $(cat "$DIR/err")"
grep -q 'dropped privileges.*user=audisp-enrich' "$DIR/err" || fail "no privilege drop: $(cat "$DIR/err")"
test "$(grep -c '"@timestamp"' "$DIR/out")" -gt 10 || fail "few events: $(head -c 300 "$DIR/out")"`)
}

// TestDebUpgradeInNamespace installs, upgrades and purges the .deb with
// the real dpkg in a private mount namespace (inNamespace: dpkg's
// database and every file it writes land in the overlays), for what the
// host install of TestDeb does not meet: an upgrade keeps every admin
// edit of the plugins.d file, and a conffile the admin deleted stays
// deleted while the upgrade succeeds; purge is silent and complete.
func TestDebUpgradeInNamespace(t *testing.T) {
	testsupport.SkipShort(t, "installs the .deb with dpkg in a mount namespace; root")
	requireRoot(t)
	requireTool(t, "dpkg", "dpkg")
	pk := buildPackages(t)
	lockNoAuditd(t)
	inNamespace(t, pk, `DEB="`+pk.deb+`"
P=/etc/audit/plugins.d/audisp-enrich.conf
dpkg -i "$DEB" > "$DIR/dpkg.out" 2>&1 || fail "dpkg -i: $(cat "$DIR/dpkg.out")"
sed -i -e 's/^format = string$/format = binary/' -e 's/^active = yes$/active = no/' "$P"
echo '# admin' >> "$P"; chmod 0600 "$P"; cp -p "$P" "$DIR/want"
rm /etc/audisp-enrich/config.toml
dpkg -i "$DEB" > "$DIR/dpkg.out" 2>&1 || fail "upgrade: $(cat "$DIR/dpkg.out")"
dpkg-query -W -f '${db:Status-Abbrev}' audisp-enrich | grep -qx 'ii ' || fail "not installed after the upgrade: $(dpkg-query -W -f '${db:Status-Abbrev}' audisp-enrich)"
cmp "$P" "$DIR/want" || fail "the upgrade changed the plugins.d file: $(cat "$P")"
test "$(stat -c %a "$P")" = 600 || fail "the upgrade changed its mode to $(stat -c %a "$P")"
test ! -e /etc/audisp-enrich/config.toml || fail "the deleted conffile came back"
dpkg --purge audisp-enrich > "$DIR/purge.out" 2>&1 || fail "purge: $(cat "$DIR/purge.out")"
grep -v -e '^(Reading database' -e '^Removing audisp-enrich' -e '^Purging configuration files' -e '^Processing triggers' "$DIR/purge.out" && fail "purge said more"
! getent passwd audisp-enrich > /dev/null || fail "user left"
for p in /etc/audisp-enrich /var/lib/audisp-enrich /var/log/audisp-enrich "$P" /usr/sbin/audisp-enrich; do
	test ! -e "$p" || fail "$p left"
done`)
	if installed() {
		t.Errorf("dpkg on the machine knows %s after the namespaced run", pkgName)
	}
}
