package config

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// priced: a tariff, so that the no-tariff warning stays out of tests about
// other warnings.
const priced = "tariff: {periods: [{start: \"00:00\", end: \"24:00\", type: flat, electricity: \"1\", service: \"0.5\"}]}\n"

const base = `station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a
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
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "", "station_uuid"},
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

// Mistakes the daemon used to accept (or die on later), each named by key,
// together with the earlier table: more than 45 malformed configs.
func TestMoreMistakesNameTheirKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	cases := []struct{ old, new, key string }{
		{"device: /dev/ttyUSB0", "device: 'tcp://10.0.0.5'", "buses[0].device"},
		{"device: /dev/ttyUSB0", "device: 'tcp://:502'", "buses[0].device"},
		{"device: /dev/ttyUSB0", "device: 'tcp://gw:99999'", "buses[0].device"},
		{"device: /dev/ttyUSB0", "device: 'serial:///dev/ttyUSB0'", "buses[0].device"},
		{"device: /dev/ttyUSB0", "device: ttyUSB0", "buses[0].device"},
		{"device: /dev/ttyUSB0}]", "device: /dev/ttyUSB0}, {name: l2, device: /dev/ttyUSB0}]", "buses[1].device"},
		{"device: /dev/ttyUSB0}]", "device: /dev/ttyUSB0}, {name: l2, device: '/dev/../dev/ttyUSB0'}]", "buses[1].device"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, switch_gap: -1s", "buses[0].switch_gap"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, low_latency: yes", "buses[0].low_latency"},
		{"data_dir: /tmp/d\n", "data_dir: /tmp/d\nhistory_days: -5\n", "history_days"},
		{"app_secret: sec}", "app_secret: sec, max_bill_age: 10s}", "platform.max_bill_age"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, rs485: {enabled: true, rts_after_send: true}", "buses[0].rs485.rts_on_send"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, rs485: {enabled: true, delay_rts_before_send: 1500us}", "buses[0].rs485.delay_rts_before_send"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, rs485: {enabled: true, delay_rts_after_send: 2s}", "buses[0].rs485.delay_rts_after_send"},
		{"device: /dev/ttyUSB0", "device: 'tcp://10.0.0.5:502', rs485: {enabled: true}", "buses[0].rs485"},
		{"device: /dev/ttyUSB0", "device: 'tcp://10.0.0.5:502', low_latency: on", "buses[0].low_latency"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, retries: 9", "buses[0].retries"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, data_bits: 5", "buses[0].data_bits"},
		{"device: /dev/ttyUSB0", "device: /dev/ttyUSB0, timeout: 500", "buses[0].timeout"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nlog: {level: loud}\n", "log.level"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nlog: {format: xml}\n", "log.format"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nlisten: 8080\n", "listen"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nlisten: 'localhost:http-alt'\n", "listen"},
		{"data_dir: /tmp/d\n", "data_dir: " + file + "\n", "data_dir"},
		{"data_dir: /tmp/d\n", "data_dir: " + file + "/data\n", "data_dir"},
		{"https://api.4pyun.com", "https://", "platform.base_url"},
		{"https://api.4pyun.com", "ftp://api.4pyun.com", "platform.base_url"},
		{"https://api.4pyun.com", "'https:// api'", "platform.base_url"},
		{"app_id: a", "app_id: ''", "platform.app_id"},
		{"app_secret: sec", "app_secret_file: /nonexistent/secret", "platform.app_secret_file"},
		{"app_id: a", "app_id: a, timeout: 500", "platform.timeout"},
		{"app_id: a", "app_id: a, timeout: -1s", "platform.timeout"},
		{"app_id: a", "app_id: a, retry_base: 10m, retry_max: 1m", "platform.retry_base"},
		{"app_id: a", "app_id: a, outbox_max_records: -5", "platform.outbox_max_records"},
		{"app_id: a", "app_id: a, progress_interval: 100ms", "platform.progress_interval"},
		{"app_id: a", "app_id: a, device_sync_interval: -1m", "platform.device_sync_interval"},
		{"app_id: a", "app_id: a, outbox_max_records: many", "platform.outbox_max_records"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nsession: {hold_polls: -1}\n", "session.hold_polls"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nsession: {offline_close: -1h}\n", "session.offline_close"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nsession: {start_timeout: -2m}\n", "session.start_timeout"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nsession: {persist_interval: 1h}\n", "session.persist_interval"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nsession: {offline_after: 30}\n", "session.offline_after"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\npoll_interval: 10ms\n", "poll_interval"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nparking_reduction: maybe\n", "parking_reduction"},
		{"buses: [{name: l1, device: /dev/ttyUSB0}]", "buses: 3", "buses"},
		{"station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "station_uuid: s\nnode_id: x\nnode_id: y\n", "node_id"},
		{"profile: ref-ac}", "profile: ref-ac, meter_only: {start_power_w: 100, stop_power_w: 500}}", "piles[0].ports[0].meter_only.start_power_w"},
		{"profile: ref-ac}", "profile: ref-ac, meter_only: {start_power_w: 200, stop_power_w: 200}}", "piles[0].ports[0].meter_only.start_power_w"},
		{"profile: ref-ac}", "profile: ref-ac, meter_only: {stop_for: -1s}}", "piles[0].ports[0].meter_only"},
		{"profile: ref-ac}", "profile: ref-ac, timeout: 1m}", "piles[0].ports[0].timeout"},
		{"slave: 1, profile: ref-ac}", "slave: x, profile: ref-ac}", "piles[0].ports[0].slave"},
		{"    energy_code: CN_AC\n", "    energy_code: CN_AC\n    device_type: 2\n", "piles[0].device_type"},
		{"  - device_no: P1\n", "  - device_no: ''\n", "piles[0].device_no"},
		{`ports: [{port_no: "1", slave: 1, profile: ref-ac}]`, "ports: []", "piles[0].ports"},
		{`port_no: "1", `, "", "piles[0].ports[0].port_no"},
	}
	require.GreaterOrEqual(t, len(cases), 45)
	for _, c := range cases {
		doc := strings.Replace(base, c.old, c.new, 1)
		require.NotEqual(t, base, doc, c.key)
		_, err := Parse([]byte(doc), "c.yaml")
		require.Error(t, err, "%s\n%s", c.key, doc)
		assert.Contains(t, err.Error(), "c.yaml: "+c.key+":", "%s", doc)
		assert.NotContains(t, err.Error(), "sec\"", "no secret in errors")
	}
}

// Every mistake in a file is reported at once, not one per run of check.
func TestAllMistakesAtOnce(t *testing.T) {
	doc := strings.NewReplacer("station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\n", "", "slave: 1", "slave: 0", "energy_code: CN_AC", "energy_code: AC").Replace(base)
	_, err := Parse([]byte(doc), "c.yaml")
	var errs Errors
	require.ErrorAs(t, err, &errs)
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
	}
	assert.ElementsMatch(t, []string{"station_uuid", "piles[0].energy_code", "piles[0].ports[0].slave"}, keys)
}

func TestFileShapeMistakes(t *testing.T) {
	for doc, want := range map[string]string{
		"":                              "(file): empty",
		"# only a comment\n":            "(file): empty",
		base + "---\nstation_uuid: t\n": "(file): a second YAML document at line",
		"station_uuid: [\n":             "(yaml)",
		"platform: {timeout: 500}\n":    "platform.timeout: 500: want a duration such as 500ms",
	} {
		_, err := Parse([]byte(doc), "c.yaml")
		require.Error(t, err, doc)
		assert.Contains(t, err.Error(), want, doc)
	}
}

// A secret file others can read is accepted with a loud warning.
func TestSecretFileModeWarning(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret"), 0o644))
	doc := strings.Replace(base, "app_secret: sec", "app_secret_file: "+secret, 1) + priced
	c, err := Parse([]byte(doc), "c.yaml")
	require.NoError(t, err)
	require.Len(t, c.Warnings, 1)
	assert.Contains(t, c.Warnings[0], secret)
	assert.Contains(t, c.Warnings[0], "0644")
	require.NoError(t, os.Chmod(secret, 0o600))
	c, err = Parse([]byte(doc), "c.yaml")
	require.NoError(t, err)
	assert.Empty(t, c.Warnings)
}

// Root running `check` (the README's deploy step) judges the secret file as
// the service would: a file in the service's group is right, a file in
// another group is named by that group's name.
func TestSecretFileInTheServiceGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("PILEBRIDGE_REQUIRE_ROOT") != "" {
			t.Fatal("needs root (chown to another group) and PILEBRIDGE_REQUIRE_ROOT is set")
		}
		t.Skip("SKIPPED LOUDLY: needs root to chown the file to another group")
	}
	other, err := user.LookupGroupId("1") // daemon on Debian: a group root is not in
	if err != nil {
		t.Skipf("no group 1 here: %v", err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret"), 0o640))
	require.NoError(t, os.Chown(secret, 0, 1))
	assert.Empty(t, secretModeWarning(secret, other.Name), "the service's own group")
	w := secretModeWarning(secret, "no-such-group-pb")
	assert.Contains(t, w, "group "+other.Name+",", "the other group by name")
	assert.Contains(t, w, "chown root:no-such-group-pb")
}

func TestRS485Accepted(t *testing.T) {
	for _, rs := range []string{"{enabled: true}", "{enabled: true, rts_on_send: false, rts_after_send: true, delay_rts_before_send: 2ms}", "{enabled: false}"} {
		c, err := Parse([]byte(strings.Replace(base, "device: /dev/ttyUSB0", "device: /dev/ttyUSB0, rs485: "+rs, 1)), "c.yaml")
		require.NoError(t, err, rs)
		require.NotNil(t, c.Buses[0].RS485, rs)
	}
}

// The platform only over TLS (records carry VIN, plate and mobile, and the
// signature): http is refused but for a stand-in on loopback; credentials
// in the URL are refused and never echoed.
func TestBaseURLOnlyOverTLS(t *testing.T) {
	for url, want := range map[string]string{
		"http://api.4pyun.com":               "only over https",
		"http://192.168.1.10:8080":           "only over https",
		"https://user:pw@api.4pyun.com":      "credentials in the URL are refused",
		"https://api.4pyun.com":              "",
		"http://127.0.0.1:8080":              "",
		"http://localhost:8080":              "",
		"http://[::1]:8080":                  "",
		"https://dev-api.4pyun.com/gateway/": "",
	} {
		doc := strings.Replace(base, "https://api.4pyun.com", url, 1)
		_, err := Parse([]byte(doc), "c.yaml")
		if want == "" {
			assert.NoError(t, err, url)
			continue
		}
		require.Error(t, err, url)
		assert.Contains(t, err.Error(), "platform.base_url")
		assert.Contains(t, err.Error(), want, url)
		assert.NotContains(t, err.Error(), "pw@", "the password is not echoed")
	}
}

// An inline app_secret in a config others can read is warned about, as a
// readable secret file is; systemd's LoadCredential= is a source too.
func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(base, "/tmp/d", filepath.Join(dir, "d"), 1)+priced), 0o644))
	c, err := Load(path)
	require.NoError(t, err)
	require.Len(t, c.Warnings, 1)
	assert.Contains(t, c.Warnings[0], "platform.app_secret is written in "+path+", which has mode 0644")
	require.NoError(t, os.Chmod(path, 0o600))
	c, err = Load(path)
	require.NoError(t, err)
	assert.Empty(t, c.Warnings, "a 0600 config may hold it")

	creds := filepath.Join(dir, "creds")
	require.NoError(t, os.MkdirAll(creds, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(creds, "app_secret"), []byte("from-systemd\n"), 0o400))
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	c, err = Parse([]byte(strings.Replace(base, ", app_secret: sec", "", 1)), "c.yaml")
	require.NoError(t, err)
	assert.Equal(t, "from-systemd", c.Platform.AppSecret)
}

func TestPIIDaysBounded(t *testing.T) {
	c, err := Parse([]byte(base), "c.yaml")
	require.NoError(t, err)
	assert.Equal(t, 30, c.PIIDays)
	_, err = Parse([]byte(base+"history_days: 10\npii_days: 20\n"), "c.yaml")
	assert.ErrorContains(t, err, "pii_days: 20: want 1..history_days (10)")
}

// A config without a tariff works, and says so: bills at 0 fen are a
// warning in check and at start, not silence.
func TestNoTariffIsAWarning(t *testing.T) {
	c, err := Parse([]byte(base), "c.yaml")
	require.NoError(t, err)
	require.Len(t, c.Warnings, 1)
	assert.Contains(t, c.Warnings[0], "no tariff: bills carry the quantity and 0 fen")
	c, err = Parse([]byte(base+priced), "c.yaml")
	require.NoError(t, err)
	assert.Empty(t, c.Warnings)
}

// Issue 28, item 4: a data_dir others (or the group) can write is refused;
// a token file others can read is warned about.
func TestDataDirAndTokenModes(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o750))
	cfg := "station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\ndata_dir: " + data + "\n"
	require.NoError(t, os.Chmod(data, 0o777))
	_, err := ParseAll([]byte(cfg), "t.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "writable by its group or others")
	require.NoError(t, os.Chmod(data, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(data, "listen_token"), []byte("0123456789abcdef0123\n"), 0o644))
	c, _ := ParseAll([]byte(cfg), "t.yaml")
	require.NotNil(t, c)
	assert.Contains(t, strings.Join(c.Warnings, "\n"), "can be read by others")
}
