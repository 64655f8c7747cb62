package hunt

import (
	"slices"
	"testing"
)

// TestBuiltinExceptions: the built-in rules stay quiet on what developer
// and admin tools routinely run (the review's fp.log and hid.log), and
// each exception is narrow: a path that only looks like the tool's still
// hits.
func TestBuiltinExceptions(t *testing.T) {
	e := mustEnricher(t, DefaultConfig())
	for _, tc := range []struct {
		exe  string
		want []string // rules that must hit (nil: none)
	}{
		// go run / go test
		{"/tmp/go-build3315/b001/exe/main", nil},
		{"/tmp/go-build3315/b001/hunt.test", nil},
		{"/tmp/go-build3315/evil", []string{"exec_from_temp_dir"}},
		{"/tmp/go-buildx/b001/exe/main", []string{"exec_from_temp_dir"}},
		{"/tmp/go-build1/b001/exe/sub/main", []string{"exec_from_temp_dir"}},
		// AppImage mounts
		{"/tmp/.mount_KeePasXYZabc/AppRun", nil},
		{"/tmp/.mount_KeePasXYZabc/usr/bin/keepassxc", nil},
		{"/tmp/.mount_x/AppRun", []string{"exec_from_temp_dir", "exec_from_hidden_path"}},
		{"/tmp/.x/AppRun", []string{"exec_from_temp_dir", "exec_from_hidden_path"}},
		// developer tools in hidden directories
		{"/home/u/proj/.venv/bin/python3", nil},
		{"/home/u/proj/.git/hooks/pre-commit", nil},
		{"/home/u/proj/.terraform/providers/registry.terraform.io/hashicorp/aws/5.31.0/linux_amd64/terraform-provider-aws_v5.31.0_x5", nil},
		{"/home/u/.vscode/extensions/golang.go-0.41.0/bin/gopls", nil},
		{"/root/.cache/pre-commit/repok3x9_a1b/py_env-python3/bin/black", nil},
		{"/home/u/proj/.venv/lib/evil", []string{"exec_from_hidden_path"}},
		{"/home/u/proj/.git/objects/evil", []string{"exec_from_hidden_path"}},
		{"/home/u/proj/.terraform/providers/evil", []string{"exec_from_hidden_path"}},
		{"/home/u/.cache/evil", []string{"exec_from_hidden_path"}},
		{"/opt/.vscode/extensions/x", []string{"exec_from_hidden_path"}},
		// Linuxbrew
		{"/home/linuxbrew/.linuxbrew/Cellar/bash/5.2/bin/bash", nil},
		{"/home/linuxbrew/.linuxbrew/bin/ps", nil},
		{"/home/linuxbrew/ps", []string{"masqueraded_system_utility"}},
		{"/home/alice/bin/ps", []string{"masqueraded_system_utility"}},
	} {
		got := hits(t, e, ev{exe: tc.exe, uid: 1000}.build())
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: hits %q, want %q", tc.exe, got, want)
		}
	}
}

// TestIMAAloneIsExec: a lone IMA measurement is an execution only while
// ima_alone_is_exec holds (a BPRM_CHECK-only policy); with it off (a policy
// that measures reads, as ima_policy=tcb does for root) a root less of
// /tmp/report.txt or vim of /root/bin/ps (review fp.log 103, 104) raises
// nothing, and a SYSCALL execution still does.
func TestIMAAloneIsExec(t *testing.T) {
	on := mustEnricher(t, DefaultConfig())
	cfg := DefaultConfig()
	cfg.IMAAloneIsExec = false
	off := mustEnricher(t, cfg)
	for _, tc := range []struct {
		e       ev
		on, off []string
	}{
		{ev{syscall: "ima", exe: "/tmp/report.txt"}, []string{"exec_from_temp_dir"}, nil},
		{ev{syscall: "ima", exe: "/root/bin/ps"}, []string{"masqueraded_system_utility"}, nil},
		{ev{exe: "/tmp/x"}, []string{"exec_from_temp_dir"}, []string{"exec_from_temp_dir"}},
	} {
		if got := hits(t, on, tc.e.build()); !slices.Equal(got, tc.on) {
			t.Errorf("%s, ima_alone_is_exec on: %q, want %q", tc.e.exe, got, tc.on)
		}
		if got := hits(t, off, tc.e.build()); !slices.Equal(got, tc.off) {
			t.Errorf("%s, ima_alone_is_exec off: %q, want %q", tc.e.exe, got, tc.off)
		}
	}
}
