package plugin

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestStatusAddressHeldTooLong: a status address another program keeps
// beyond startWait is logged as an error and the plugin goes on without
// the listener; an address that cannot work at all is still an error.
func TestStatusAddressHeldTooLong(t *testing.T) {
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var logged testsupport.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	start := time.Now()
	ln, err := openStatus(other.Addr().String(), log)
	waited := time.Since(start)
	if err != nil || ln != nil {
		ln.close()
		t.Fatalf("openStatus on a held address: %v, %v; want no listener and no error", ln, err)
	}
	if waited < startWait || waited > startWait+time.Second {
		t.Errorf("gave up after %v, want about %v", waited, startWait)
	}
	for _, want := range []string{"level=INFO msg=\"status address in use", "level=ERROR msg=\"status listener not opened: its address is still in use; running without it\" listen=" + other.Addr().String()} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logged.String())
		}
	}
	ln, err = openStatus("unix:"+filepath.Join(t.TempDir(), "missing", "metrics.sock"), log)
	if err == nil || !strings.Contains(err.Error(), "metrics listener unix:") {
		ln.close()
		t.Errorf("a socket in a missing directory: %v, want the listener's error", err)
	}
}

// TestLiveClosesPipelineOnStartError: a start-up error after the pipeline
// was built (here the reader's) closes it before Live returns, so its sinks
// stop and release what they hold (a disk buffer's lock) and background
// work ends, instead of running on until the process exits.
func TestLiveClosesPipelineOnStartError(t *testing.T) {
	dir := t.TempDir()
	cfg, err := conf.Parse("start.toml", []byte(`user = "root"
state_dir = "`+dir+`"
[log]
syslog = false
[status]
interval = "0s"
[[sink]]
name = "net"
type = "syslog"
[sink.syslog]
transport = "tcp"
address = "127.0.0.1:1"
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Input.Format = "no-such-format" // conf refuses it; NewReader is the check that fails here
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	err = Live(cfg, "", slog.New(slog.DiscardHandler), r)
	if err == nil || !strings.Contains(err.Error(), "unknown input format") {
		t.Fatalf("Live: %v, want the reader's error", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "spool", "net", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the sink's disk buffer is still open after Live returned: %v", err)
	}
}

// TestMakeOutputDirs: the missing directories of file sinks and of the
// parse-error log are made before the privilege drop and given to the
// service user; directories that exist keep their owner and mode.
func TestMakeOutputDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const nobody = 65534
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin")
	if err := os.Mkdir(admin, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Parse("dirs.toml", []byte(`user = "nobody"
state_dir = "`+dir+`/state"
[log]
parse_errors = "`+dir+`/errors/rejected.log"
[[sink]]
name = "deep"
type = "file"
[sink.file]
path = "`+dir+`/logs/a/b/events.json"
[[sink]]
name = "existing"
type = "file"
[sink.file]
path = "`+admin+`/events.json"
`))
	if err != nil {
		t.Fatal(err)
	}
	var logged testsupport.SyncBuffer
	if err := makeOutputDirs(cfg, slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"logs", "logs/a", "logs/a/b", "errors"} {
		st := stat(t, filepath.Join(dir, d))
		if st.Uid != nobody || st.Gid != nobody || st.Mode&0o7777 != 0o750 {
			t.Errorf("%s: uid %d gid %d mode %o, want the service user's (%d), 0750", d, st.Uid, st.Gid, st.Mode&0o7777, nobody)
		}
	}
	for _, d := range []string{dir, admin} {
		if st := stat(t, d); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s existed and was given away: uid %d gid %d", d, st.Uid, st.Gid)
		}
	}
	if st := stat(t, admin); st.Mode&0o7777 != 0o755 {
		t.Errorf("%s existed and its mode changed to %o", admin, st.Mode&0o7777)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Error("the state directory was made here; it is DropPrivileges' to make")
	}
	if logged.String() != "" {
		t.Errorf("logged:\n%s", logged.String())
	}

	// A directory that cannot be made is logged, and the start goes on.
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Sinks[0].File.Path = filepath.Join(blocker, "sub", "events.json")
	if err := makeOutputDirs(cfg, slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "cannot make the directory of an output file") || !strings.Contains(logged.String(), blocker) {
		t.Errorf("the failure was not logged with the file:\n%s", logged.String())
	}
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}
