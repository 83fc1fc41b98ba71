// Package blockdev counts the bytes that reach a block device, for the
// storage benchmarks.
//
// Why not /proc/self/io write_bytes: the kernel charges a task for every
// page-cache folio it dirties, and a large folio is charged whole when 4 KiB
// of it changes. bbolt rewrites a few 4 KiB pages of a file it has extended
// in large steps, so write_bytes reported 38 KB per commit where the device
// received 20 KB. What wears an SD card or eMMC is what the block layer
// sends it, journal included: the sectors in /sys/block/<dev>/stat.
package blockdev

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is a block device's statistics in sysfs.
type Device struct {
	Name string // kernel name, e.g. loop3 or vda
	stat string // path of its stat file
}

// Of returns the block device that holds path.
func Of(path string) (Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Device{}, fmt.Errorf("block device of %s: %w", path, err)
	}
	major, minor := unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))
	dir := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Device{}, fmt.Errorf("block device of %s (%d:%d): not a block device in sysfs: %w", path, major, minor, err)
	}
	return Device{Name: filepath.Base(real), stat: filepath.Join(real, "stat")}, nil
}

// Named returns the device /sys/block/<name>.
func Named(name string) Device {
	return Device{Name: name, stat: filepath.Join("/sys/block", name, "stat")}
}

// Written returns the bytes written to the device since it appeared.
func (d Device) Written() (int64, error) {
	data, err := os.ReadFile(d.stat)
	if err != nil {
		return 0, fmt.Errorf("device %s: %w", d.Name, err)
	}
	return parseStat(d.Name, data)
}

// parseStat takes the write sectors (field 7, always in 512-byte units:
// Documentation/block/stat.rst) from a stat file.
func parseStat(name string, data []byte) (int64, error) {
	f := strings.Fields(string(data))
	if len(f) < 7 {
		return 0, fmt.Errorf("device %s: stat has %d fields, want at least 7", name, len(f))
	}
	sectors, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("device %s: write sectors %q: %w", name, f[6], err)
	}
	return sectors * 512, nil
}

// Loop is an ext4 file system on a loop device, mounted at Dir: a device of
// its own, so its statistics hold only the benchmark's writes.
type Loop struct {
	Dir    string
	Device Device
	image  string
}

// MountLoop makes an ext4 image of sizeMiB under work and mounts it. It needs
// root and losetup; the error says which step failed.
func MountLoop(ctx context.Context, work string, sizeMiB int) (*Loop, error) {
	image := filepath.Join(work, "bench.ext4")
	dir := filepath.Join(work, "mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(image)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(int64(sizeMiB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// No lazy initialisation: it would zero inode tables and the journal in
	// the background, on the device being measured.
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", image); err != nil {
		return nil, err
	}
	dev, err := output(ctx, "losetup", "--find", "--show", image)
	if err != nil {
		return nil, err
	}
	l := &Loop{Dir: dir, Device: Named(filepath.Base(dev)), image: image}
	if err := run(ctx, "mount", "-t", "ext4", dev, dir); err != nil {
		_ = run(context.Background(), "losetup", "-d", dev)
		return nil, err
	}
	return l, nil
}

// Close unmounts the file system and detaches the loop device.
func (l *Loop) Close() error {
	ctx := context.Background()
	if err := run(ctx, "umount", l.Dir); err != nil {
		return err
	}
	if err := run(ctx, "losetup", "-d", "/dev/"+l.Device.Name); err != nil {
		return err
	}
	return os.Remove(l.image)
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
