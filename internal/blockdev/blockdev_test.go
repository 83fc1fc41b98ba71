package blockdev

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	n, err := parseStat("vda", []byte("   55        0     2102        8        1        0        2        0        0        8        9        0\n"))
	require.NoError(t, err)
	assert.Equal(t, int64(1024), n)
	_, err = parseStat("vda", []byte("1 2 3"))
	assert.ErrorContains(t, err, "device vda: stat has 3 fields")
	_, err = parseStat("vda", []byte("1 2 3 4 5 6 x"))
	assert.ErrorContains(t, err, `write sectors "x"`)
}

func TestOfFindsTheDeviceUnderADirectory(t *testing.T) {
	d, err := Of(t.TempDir())
	if err != nil {
		t.Skipf("no block device in sysfs here: %v", err)
	}
	assert.NotEmpty(t, d.Name)
	_, err = d.Written()
	assert.NoError(t, err)
}

// A loop device counts the writes made to its file system, fsync included.
func TestLoopCountsWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if os.Getenv("PILEBRIDGE_QEMU") != "" {
		// mkfs and losetup started from an emulated binary: a fork under
		// qemu-user once hung the run for 10 minutes, and the host's tools
		// are the same ones the native pass already ran
		t.Skip("not under qemu-user: the native pass covers it")
	}
	l, err := MountLoop(context.Background(), t.TempDir(), 16)
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	defer func() { assert.NoError(t, l.Close()) }()
	before, err := l.Device.Written()
	require.NoError(t, err)
	f, err := os.Create(filepath.Join(l.Dir, "x"))
	require.NoError(t, err)
	_, err = f.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	after, err := l.Device.Written()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after-before, int64(1<<20), "the 1 MiB written and synced reached the device")
	d, err := Of(l.Dir)
	require.NoError(t, err)
	assert.Equal(t, l.Device.Name, d.Name)
}
