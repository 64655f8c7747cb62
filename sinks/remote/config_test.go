package remote

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestConfigTOML(t *testing.T) {
	var c Config
	_, err := toml.Decode(`address = "10.0.0.5:60"
heartbeat_interval = "20s"
ack_timeout = "3s"
dial_timeout = "2s"
backoff_min = "500ms"
backoff_max = "30s"`, &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{Address: "10.0.0.5:60", HeartbeatInterval: 20 * time.Second, AckTimeout: 3 * time.Second,
		DialTimeout: 2 * time.Second, BackoffMin: 500 * time.Millisecond, BackoffMax: 30 * time.Second}
	if c != want {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	d := Config{Address: "h:60"}
	if err := d.Validate(); err != nil || d.AckTimeout != 5*time.Second || d.BackoffMax != time.Minute || d.HeartbeatInterval != 0 {
		t.Errorf("defaults: %+v %v", d, err)
	}
	for _, bad := range []Config{{}, {Address: "nohost"}, {Address: "h:1", BackoffMin: time.Minute, BackoffMax: time.Second}, {Address: "h:1", AckTimeout: -1}} {
		if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "audisp: ") {
			t.Errorf("%+v: got %v, want an error", bad, err)
		}
	}
}
