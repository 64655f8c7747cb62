package installtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// rpmEntry is one line of `rpm -qlvp`: permissions, owner, group.
type rpmEntry struct {
	perms, owner, group string
}

// TestRPM inspects the .rpm (files, modes, owners, config file, scripts,
// changelog, license) and installs it into a --root directory without
// scripts, then checks what landed there, and that nothing landed in /.
func TestRPM(t *testing.T) {
	testsupport.SkipShort(t, "builds the .rpm and installs it into an rpm database; root")
	requireRoot(t)
	requireTool(t, "rpm", "rpm")
	pk := buildPackages(t)

	// rpm shortens user and group names to 8 characters in -qlv output.
	const svc = "audisp-e"
	want := map[string]rpmEntry{
		"/usr/sbin/audisp-enrich":                               {"-rwxr-x---", "root", "root"},
		"/etc/audisp-enrich":                                    {"drwxr-x---", "root", svc},
		"/etc/audisp-enrich/config.toml":                        {"-rw-r-----", "root", svc},
		"/var/lib/audisp-enrich":                                {"drwxr-x---", svc, svc},
		"/var/log/audisp-enrich":                                {"drwxr-x---", svc, svc},
		"/usr/share/audisp-enrich/plugins.d/audisp-enrich.conf": {"-rw-r--r--", "root", "root"},
		"/usr/share/audisp-enrich":                              {"drwxr-xr-x", "root", "root"},
		"/usr/share/audisp-enrich/plugins.d":                    {"drwxr-xr-x", "root", "root"},
		"/usr/share/licenses/audisp-enrich":                     {"drwxr-xr-x", "root", "root"},
		"/usr/share/doc/audisp-enrich":                          {"drwxr-xr-x", "root", "root"},
		"/usr/share/doc/audisp-enrich/fleet.md.gz":              {"-rw-r--r--", "root", "root"},
		"/usr/share/doc/audisp-enrich/schema.md.gz":             {"-rw-r--r--", "root", "root"},
		"/usr/share/doc/audisp-enrich/sigma.md.gz":              {"-rw-r--r--", "root", "root"},
		"/usr/share/man/man8/audisp-enrich.8.gz":                {"-rw-r--r--", "root", "root"},
		"/usr/share/man/man5/audisp-enrich.conf.5.gz":           {"-rw-r--r--", "root", "root"},
		"/usr/share/licenses/audisp-enrich/copyright":           {"-rw-r--r--", "root", "root"},
		"/usr/share/licenses/audisp-enrich/LICENSE":             {"-rw-r--r--", "root", "root"},
		"/usr/share/licenses/audisp-enrich/MPL-2.0":             {"-rw-r--r--", "root", "root"},
	}
	got := map[string]rpmEntry{}
	for _, l := range strings.Split(strings.TrimSpace(run(t, "rpm", "-qlvp", pk.rpm)), "\n") {
		f := strings.Fields(l)
		if len(f) < 9 {
			t.Fatalf("rpm -qlvp line %q", l)
		}
		got[f[len(f)-1]] = rpmEntry{f[0], f[2], f[3]}
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("rpm lacks %s", p)
		} else if g != w {
			t.Errorf("rpm %s: %v, want %v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("rpm has the unexpected file %s", p)
		}
	}

	if cf := strings.TrimSpace(run(t, "rpm", "-qp", "--configfiles", pk.rpm)); cf != confPath {
		t.Errorf("rpm config files %q, want %s", cf, confPath)
	}
	if flags := run(t, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", pk.rpm); !strings.Contains(flags, confPath+" cn") {
		t.Errorf("%s is not %%config(noreplace):\n%s", confPath, flags)
	}
	if lic := run(t, "rpm", "-qp", "--qf", "%{LICENSE}", pk.rpm); !strings.Contains(lic, "MIT") {
		t.Errorf("rpm License %q", lic)
	}
	// RPM distributions have no /usr/share/common-licenses: the full texts
	// the copyright file refers to are %license files of the package.
	lf := strings.Fields(run(t, "rpm", "-qp", "--licensefiles", pk.rpm))
	for _, l := range []string{"copyright", "LICENSE", "MPL-2.0"} {
		if !slices.Contains(lf, "/usr/share/licenses/audisp-enrich/"+l) {
			t.Errorf("rpm --licensefiles %v lacks %s", lf, l)
		}
	}
	// %description: prose after the Summary, not the deb's synopsis line
	// and " ." paragraph separators.
	desc := run(t, "rpm", "-qp", "--qf", "%{DESCRIPTION}", pk.rpm)
	summary := run(t, "rpm", "-qp", "--qf", "%{SUMMARY}", pk.rpm)
	if !strings.HasPrefix(desc, "audisp-enrich is an auditd dispatcher") || strings.Contains(desc, summary) ||
		slices.Contains(strings.Split(desc, "\n"), ".") || !strings.Contains(desc, "\n\nThe package installs") {
		t.Errorf("rpm %%description (Summary %q):\n%s", summary, desc)
	}
	if chl := run(t, "rpm", "-qp", "--changelog", pk.rpm); !strings.Contains(chl, "- 0.1.0-1\n") {
		t.Errorf("rpm changelog lacks the 0.1.0-1 entry:\n%s", chl)
	}
	deps := run(t, "rpm", "-qpR", pk.rpm)
	for _, d := range []string{"audit", "shadow-utils"} {
		if !strings.Contains("\n"+deps, "\n"+d+"\n") {
			t.Errorf("rpm does not require %s:\n%s", d, deps)
		}
	}

	// Scriptlets: %pre makes the account before files get their owners;
	// %post installs the plugins.d file and reloads; %preun and %postun act
	// on erase only ($1 = 0), not on upgrade.
	scripts := run(t, "rpm", "-qp", "--scripts", pk.rpm)
	sections := splitScripts(scripts)
	for name, needles := range map[string][]string{
		"preinstall":    {"groupadd -r \"$AE_USER\"", "useradd -r -g \"$AE_USER\" -d \"$AE_STATE\" -M -s /sbin/nologin"},
		"postinstall":   {"\nae_install_plugin\nae_reload_auditd\n", "/etc/audisp/plugins.d", "auditctl --signal reload"},
		"preuninstall":  {"if [ \"$1\" = 0 ]; then\n\tae_remove_plugin\n\tae_reload_auditd\n"},
		"postuninstall": {"if [ \"$1\" = 0 ]; then\n\trm -rf \"$AE_STATE\"\n"},
	} {
		body, ok := sections[name]
		if !ok {
			t.Errorf("rpm has no %s scriptlet:\n%s", name, scripts)
			continue
		}
		for _, n := range needles {
			if !strings.Contains(body, n) {
				t.Errorf("rpm %s scriptlet lacks %q", name, n)
			}
		}
		if out, err := exec.Command("sh", "-n", "-c", body).CombinedOutput(); err != nil {
			t.Errorf("rpm %s scriptlet: sh -n: %v: %s", name, err, out)
		}
	}

	// Install into a scratch root without scripts (they would run chrooted
	// there, where no shell exists), then check files and modes.
	root := t.TempDir()
	run(t, "rpm", "--root", root, "--initdb")
	out, err := exec.Command("rpm", "--root", root, "-i", "--nodeps", "--noscripts", "--nosignature", pk.rpm).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm --root %s -i: %v\n%s", root, err, out)
	}
	for p, w := range want {
		st, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("after rpm --root install: %v", err)
			continue
		}
		if m := st.Mode().String(); m != w.perms && !(st.IsDir() && "d"+m[1:] == w.perms) {
			t.Errorf("%s in the rpm root: mode %s, want %s", p, m, w.perms)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, confPath))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(filepath.Join(pk.root, "packaging", "config.toml"))
	if string(b) != string(src) {
		t.Errorf("%s in the rpm root differs from packaging/config.toml", confPath)
	}
	cr, err := os.ReadFile(filepath.Join(root, "/usr/share/licenses/audisp-enrich/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"LICENSE": "LICENSE", "MPL-2.0": "packaging/licenses/MPL-2.0"} {
		got, _ := os.ReadFile(filepath.Join(root, "/usr/share/licenses/audisp-enrich", name))
		want, _ := os.ReadFile(filepath.Join(pk.root, src))
		if len(want) == 0 || string(got) != string(want) {
			t.Errorf("/usr/share/licenses/audisp-enrich/%s in the rpm root differs from %s", name, src)
		}
	}
	checkCopyright(t, pk.root, cr)
	checkCopyrightModules(t, pk.root, builtModules(t, filepath.Join(pk.root, "build/installtest/audisp-enrich")))
	if v := run(t, filepath.Join(root, binPath), "--version"); v != "audisp-enrich 0.1.0-1\n" {
		t.Errorf("the packaged binary's --version says %q, want the package version 0.1.0-1", v)
	}
	if q := run(t, "rpm", "--root", root, "-q", pkgName); !strings.HasPrefix(q, "audisp-enrich-0.1.0-1") {
		t.Errorf("rpm --root -q: %q", q)
	}
	// Erase (without scripts, as the install) leaves nothing of the
	// package: every directory it uses is one it owns.
	if out, err := exec.Command("rpm", "--root", root, "-e", "--nodeps", "--noscripts", pkgName).CombinedOutput(); err != nil {
		t.Fatalf("rpm --root %s -e: %v\n%s", root, err, out)
	}
	for p := range want {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is left in the rpm root after rpm -e", p)
		}
	}
	// The rpm payload has absolute names: nothing may have gone to /.
	if _, err := os.Lstat("/usr/share/licenses/audisp-enrich"); err == nil {
		t.Errorf("/usr/share/licenses/audisp-enrich exists on the real root after the --root install")
	}
}

// splitScripts splits `rpm -qp --scripts` output into scriptlets by name
// ("preinstall scriptlet (using /bin/sh):" headers).
func splitScripts(out string) map[string]string {
	m := map[string]string{}
	name := ""
	for _, l := range strings.SplitAfter(out, "\n") {
		if h, _, ok := strings.Cut(l, " scriptlet (using "); ok && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
			name = h
			continue
		}
		if name != "" {
			m[name] += l
		}
	}
	return m
}
