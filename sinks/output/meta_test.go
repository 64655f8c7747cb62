package output

import (
	"slices"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// TestMetaTypesByName: a record whose type is written as its number
// (Android's logcat: type=1400, type=1300) is routed by its name, so that a
// sink's filter types = ["SYSCALL"] and Kafka's types header see it; a
// number without a name and a name the table lacks stay as sent.
func TestMetaTypesByName(t *testing.T) {
	var p audit.Parser
	ev := &audit.Event{}
	for _, l := range []string{
		`type=1400 msg=audit(1450655510.655:205): avc:  denied  { ioctl } for  pid=5654 comm=".test.thalitest" path="/sys/kernel/debug/tracing/trace_marker" dev="debugfs" ino=2064 scontext=u:r:untrusted_app:s0 tcontext=u:object_r:debugfs:s0 tclass=file permissive=0`,
		`type=1300 msg=audit(1450655510.655:205): arch=40000028 syscall=54 per=800000 success=no exit=-13 a0=7 a1=5451 a2=3 a3=be9fdd58 items=0 ppid=314 ppcomm=main pid=5654 auid=4294967295 uid=10326 gid=10326 euid=10326 suid=10326 fsuid=10326 egid=10326 sgid=10326 fsgid=10326 ses=4294967295 tty=(none) comm=".test.thalitest" exe="/system/bin/app_process32" subj=u:r:untrusted_app:s0 key=(null)`,
		`type=UNKNOWN[1302] msg=audit(1450655510.655:205): item=0 name="/x"`,
		`type=UNKNOWN[1420] msg=audit(1450655510.655:205): a=1`,
		`type=1420 msg=audit(1450655510.655:205): a=1`,
		`type=NOT_A_TYPE msg=audit(1450655510.655:205): a=1`,
	} {
		r, err := p.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		ev.Records = append(ev.Records, r)
	}
	want := []string{"AVC", "SYSCALL", "PATH", "UNKNOWN[1420]", "1420", "NOT_A_TYPE"}
	if got := metaOf(ev, true).Types; !slices.Equal(got, want) {
		t.Errorf("types %q, want %q", got, want)
	}
}
