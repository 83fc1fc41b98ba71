package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const base = `station_uuid: s
data_dir: /tmp/d
platform: {base_url: "https://api.4pyun.com", app_id: a, app_secret: sec}
buses: [{name: l1, device: /dev/ttyUSB0}]
piles:
  - device_no: P1
    energy_code: CN_AC
    bus: l1
    ports: [{port_no: "1", slave: 1, profile: ref-ac}]
`

func TestExampleConfigsParse(t *testing.T) {
	for _, f := range []string{"../../configs/demo.yaml"} {
		_, err := Load(f)
		require.NoError(t, err, f)
	}
	// the example names a secret file that exists only on a board
	data, err := os.ReadFile("../../configs/example.yaml")
	require.NoError(t, err)
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	doc := strings.Replace(string(data), "/etc/pilebridge/app_secret", secret, 1)
	c, err := Parse([]byte(doc), "example.yaml")
	require.NoError(t, err)
	assert.Equal(t, "s3cret", c.Platform.AppSecret, "trimmed")
	assert.Len(t, c.Piles[0].Ports, 2)
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(base), "c.yaml")
	require.NoError(t, err)
	assert.Equal(t, 9600, c.Buses[0].Baud)
	assert.Equal(t, "N", c.Buses[0].Parity)
	assert.Equal(t, 500*time.Millisecond, c.Buses[0].Timeout)
	assert.Equal(t, time.Minute, c.Platform.ProgressInterval)
	assert.Equal(t, time.Second, c.Piles[0].Ports[0].PollInterval)
	assert.EqualValues(t, 1, c.Piles[0].Ports[0].CT)
	assert.Equal(t, "pilebridge", c.LocalUserID)
}

func TestEveryMistakeNamesItsKey(t *testing.T) {
	cases := []struct{ old, new, key string }{
		{"station_uuid: s\n", "", "station_uuid"},
		{"data_dir: /tmp/d\n", "", "data_dir"},
		{"app_secret: sec", "app_secret: sec, app_secret_file: /x", "platform.app_secret"},
		{"https://api.4pyun.com", "api.4pyun.com", "platform.base_url"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, stop_bits: 3", "buses[0].stop_bits"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, baud: 12", "buses[0].baud"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, timeout: 1h", "buses[0].timeout"},
		{"{name: l1, device: /dev/ttyUSB0}", "{name: l1, device: /dev/ttyUSB0}, {name: l1, device: /dev/ttyUSB1}", "buses[1].name"},
		{"energy_code: CN_AC", "energy_code: AC", "piles[0].energy_code"},
		{"bus: l1", "bus: l9", "piles[0].bus"},
		{"slave: 1", "slave: 300", "piles[0].ports[0].slave"},
		{"slave: 1", "slave: 1, ct: 50000", "piles[0].ports[0].pt"},
		{`[{port_no: "1", slave: 1, profile: ref-ac}]`, `[{port_no: "1", slave: 1, profile: ref-ac}, {port_no: "2", slave: 1, profile: ref-ac}]`, "piles[0].ports[1].slave"},
		{"profile: ref-ac", "profile: ref-ac, pollinterval: 1s", "pollinterval: unknown key"},
		{"    bus: l1\n", "    bus: l1\n    rated_power_w: 9223372036854775807\n", "piles[0].rated_power_w"},
		{"    bus: l1\n", "    bus: l1\n    rated_power_w: -1\n", "piles[0].rated_power_w"},
		{"data_dir: /tmp/d\n", "data_dir: /tmp/d\nnode_id: 'a b'\n", "node_id"},
		{"data_dir: /tmp/d\n", "data_dir: /tmp/d\nclock: {min_date: yesterday}\n", "clock.min_date"},
	}
	for _, c := range cases {
		doc := strings.Replace(base, c.old, c.new, 1)
		require.NotEqual(t, base, doc, c.key)
		_, err := Parse([]byte(doc), "c.yaml")
		require.Error(t, err, c.key)
		assert.Contains(t, err.Error(), c.key)
		assert.NotContains(t, err.Error(), "sec\"", "no secret in errors")
	}
}
