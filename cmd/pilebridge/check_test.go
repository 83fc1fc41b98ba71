package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A technician's file with six mistakes of every kind: all named in one
// run of `check`, not in rounds (unknown key, a value of the wrong type, a
// station number that is not a UUID, a missing secret file, a slave out of
// range, an unknown profile). A missing config file is a config error too:
// exit 78, so systemd does not restart the daemon every 2 s.
func TestCheckNamesEveryMistakeInOneRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "five.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`station_uuid: not-a-uuid
data_dir: `+filepath.Join(dir, "data")+`
bogus: 1
platform: {base_url: "https://api.4pyun.com", app_id: a, app_secret_file: /nonexistent/secret, timeout: 500}
buses: [{name: l1, device: /dev/ttyUSB0}]
piles:
  - device_no: P1
    energy_code: CN_AC
    bus: l1
    ports: [{port_no: "1", slave: 0, profile: nope}]
`), 0o600))
	for _, cmd := range []string{"check", "run"} {
		out, err := exec.Command(bridgeBin, cmd, "--config", path).CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s", out)
		assert.Equal(t, 78, ee.ExitCode(), cmd)
		for _, key := range []string{"bogus: unknown key", "platform.timeout: 500", "station_uuid: \"not-a-uuid\"",
			"platform.app_secret_file", "piles[0].ports[0].slave: 0", "piles[0].ports[0].profile: no profile named \"nope\""} {
			assert.Contains(t, string(out), key, "%s names it in the same run", cmd)
		}
	}
	out, err := exec.Command(bridgeBin, "check", "--config", filepath.Join(dir, "missing.yaml")).CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Equal(t, 78, ee.ExitCode(), "a missing file is a config error")
	assert.Contains(t, string(out), "missing.yaml")

	// a profiles_dir that does not exist names its key once
	pd := filepath.Join(dir, "pd.yaml")
	require.NoError(t, os.WriteFile(pd, []byte("station_uuid: 49f0cc52-e8c7-41e3-b54d-af666b8cc11a\ndata_dir: "+filepath.Join(dir, "d")+
		"\nprofiles_dir: /nonexistent/profiles\nplatform: {base_url: 'https://x', app_id: a, app_secret: s}\n"), 0o600))
	out, _ = exec.Command(bridgeBin, "check", "--config", pd).CombinedOutput()
	assert.Contains(t, string(out), "profiles_dir: open /nonexistent/profiles")
	assert.NotContains(t, string(out), "profiles_dir: profiles_dir")
}
