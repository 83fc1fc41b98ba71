package driver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeUSB is a sysfs tree with one usb-serial port and a /dev entry (and a
// by-id link) for it. timer "" means the port has no latency_timer.
type fakeUSB struct {
	sysfs, dev, byID, timer string
	flagged                 []string
}

func newFakeUSB(t *testing.T, tty, timer string) *fakeUSB {
	root := t.TempDir()
	f := &fakeUSB{sysfs: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev", tty)}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "dev", "serial", "by-id"), 0o755))
	require.NoError(t, os.WriteFile(f.dev, nil, 0o600))
	f.byID = filepath.Join(root, "dev", "serial", "by-id", "usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0")
	require.NoError(t, os.Symlink("../../"+tty, f.byID))
	dir := filepath.Join(f.sysfs, "bus", "usb-serial", "devices", tty)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	if timer != "" {
		f.timer = filepath.Join(dir, "latency_timer")
		require.NoError(t, os.WriteFile(f.timer, []byte(timer+"\n"), 0o644))
	}
	return f
}

func (f *fakeUSB) tuner(writeErr, flagErr error) latencyTuner {
	return latencyTuner{
		sysfs: f.sysfs,
		write: func(path string, data []byte) error {
			if writeErr != nil {
				return writeErr
			}
			return os.WriteFile(path, data, 0)
		},
		setFlag: func(dev string) error {
			f.flagged = append(f.flagged, dev)
			if flagErr != nil {
				return flagErr
			}
			if f.timer != "" { // what ftdi_sio does with the flag
				return os.WriteFile(f.timer, []byte("1\n"), 0)
			}
			return nil
		},
	}
}

func (f *fakeUSB) timerNow(t *testing.T) string {
	data, err := os.ReadFile(f.timer)
	require.NoError(t, err)
	return string(data)
}

func TestLowLatencyAutoLowersTheTimer(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB3", "16")
	did, err := f.tuner(nil, nil).tune(f.byID, LowLatencyAuto)
	require.NoError(t, err)
	assert.Equal(t, "ttyUSB3: latency_timer 16 → 1 ms (sysfs)", did)
	assert.Equal(t, "1", f.timerNow(t))
	assert.Empty(t, f.flagged)
}

func TestLowLatencyAlreadyLow(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB0", "1")
	did, err := f.tuner(errors.New("must not write"), nil).tune(f.dev, LowLatencyOn)
	require.NoError(t, err)
	assert.Equal(t, "ttyUSB0: latency_timer already 1 ms", did)
}

// Not root: sysfs is not writable, the flag through the device does it.
func TestLowLatencyFallsBackToTheFlag(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB0", "16")
	did, err := f.tuner(os.ErrPermission, nil).tune(f.byID, LowLatencyAuto)
	require.NoError(t, err)
	assert.Equal(t, "ttyUSB0: latency_timer 16 → 1 ms (ASYNC_LOW_LATENCY)", did)
	assert.Equal(t, []string{f.dev}, f.flagged, "the flag is set on the resolved device")
}

func TestLowLatencyNeitherWorks(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB0", "16")
	_, err := f.tuner(os.ErrPermission, errors.New("TIOCSSERIAL: operation not permitted")).tune(f.dev, LowLatencyAuto)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ttyUSB0 latency_timer stays 16 ms")
	assert.Contains(t, err.Error(), "permission denied")
	assert.Contains(t, err.Error(), "TIOCSSERIAL")
	assert.Contains(t, err.Error(), "deploy/99-pilebridge-usb-serial.rules")
	assert.Equal(t, "16\n", f.timerNow(t))
}

// A flag that does not move the timer is not reported as success.
func TestLowLatencyTimerDidNotMove(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB0", "16")
	tu := f.tuner(os.ErrPermission, nil)
	tu.setFlag = func(string) error { return nil }
	_, err := tu.tune(f.dev, LowLatencyOn)
	assert.ErrorContains(t, err, "latency_timer still 16 ms")
}

func TestLowLatencyNoTimer(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyAMA0", "")
	did, err := f.tuner(nil, nil).tune(f.dev, LowLatencyAuto)
	require.NoError(t, err)
	assert.Contains(t, did, "ttyAMA0 has no latency timer")
	assert.Empty(t, f.flagged, "auto leaves other devices alone")

	did, err = f.tuner(nil, nil).tune(f.dev, LowLatencyOn)
	require.NoError(t, err)
	assert.Equal(t, "ttyAMA0: ASYNC_LOW_LATENCY set (no latency timer in sysfs)", did)
	assert.Equal(t, []string{f.dev}, f.flagged)

	_, err = f.tuner(nil, errors.New("TIOCGSERIAL: inappropriate ioctl for device")).tune(f.dev, LowLatencyOn)
	assert.ErrorContains(t, err, "low_latency on: ttyAMA0 has no latency timer, and ASYNC_LOW_LATENCY: TIOCGSERIAL")
}

func TestLowLatencyOffTouchesNothing(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB0", "16")
	did, err := f.tuner(errors.New("must not write"), errors.New("must not flag")).tune(f.dev, LowLatencyOff)
	require.NoError(t, err)
	assert.Contains(t, did, "off")
	assert.Equal(t, "16\n", f.timerNow(t))
}

func TestLowLatencyBadInput(t *testing.T) {
	t.Parallel()
	f := newFakeUSB(t, "ttyUSB0", "sixteen")
	_, err := f.tuner(nil, nil).tune(f.dev, LowLatencyAuto)
	assert.ErrorContains(t, err, `latency_timer: "sixteen" is not a number of ms`)
	_, err = f.tuner(nil, nil).tune(filepath.Join(t.TempDir(), "ttyUSB9"), LowLatencyAuto)
	assert.ErrorContains(t, err, "no such file")
}

// The real ioctl on a pseudo-terminal: it has no serial_struct, and the
// error says which call failed.
func TestLowLatencyFlagOnAPty(t *testing.T) {
	t.Parallel()
	ptm, pts, err := pty.Open()
	require.NoError(t, err)
	defer ptm.Close()
	defer pts.Close()
	err = setLowLatencyFlag(pts.Name())
	if err == nil {
		t.Skip("this kernel's pty accepts TIOCSSERIAL")
	}
	assert.Contains(t, err.Error(), "TIOC")
}
