package hunt

import (
	"slices"
	"strconv"
	"testing"
)

// TestNumericRecordTypes: a record whose type is written as its number
// (type=1300, as Android's logcat writes the kernel's records) is the
// numbered type. The facts compared type names, so an exec from /tmp
// written so, or an INTEGRITY_RULE written as 1805, hit nothing.
func TestNumericRecordTypes(t *testing.T) {
	e := mustEnricher(t, DefaultConfig())
	for _, syscall := range []string{"59", "ima"} {
		event := ev{exe: "/tmp/x/run", uid: 1000, syscall: syscall}.build()
		for _, r := range event.Records {
			r.Type = strconv.Itoa(int(r.TypeNum))
		}
		if got := hits(t, e, event); !slices.Contains(got, "exec_from_temp_dir") {
			t.Errorf("%s with numbered types: hits %q, want exec_from_temp_dir", syscall, got)
		}
	}
}
