package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LowLatency is a serial bus's low_latency setting. FTDI-style USB adapters
// hold received bytes for their latency timer (16 ms by default) before
// sending them to the host: at 115200 baud that is most of an exchange.
type LowLatency string

const (
	// LowLatencyAuto lowers the timer of a USB serial adapter that has one,
	// and leaves other devices alone.
	LowLatencyAuto LowLatency = "auto"
	// LowLatencyOn also asks devices without a sysfs timer for the
	// ASYNC_LOW_LATENCY flag, and warns when nothing could be set.
	LowLatencyOn LowLatency = "on"
	// LowLatencyOff leaves the device as it is.
	LowLatencyOff LowLatency = "off"
)

// asyncLowLatency is ASYNC_LOW_LATENCY (1 << ASYNCB_LOW_LATENCY) in
// struct serial_struct's flags, a flag a user may set without privileges.
const asyncLowLatency = 1 << 13

// latencyTuner applies low_latency to a serial device before it is opened.
type latencyTuner struct {
	sysfs string // "/sys"; a fake tree in tests
	// setFlag sets ASYNC_LOW_LATENCY on the device (TIOCSSERIAL).
	setFlag func(dev string) error
	write   func(path string, data []byte) error
}

func newLatencyTuner() latencyTuner {
	return latencyTuner{sysfs: "/sys", setFlag: setLowLatencyFlag,
		write: func(path string, data []byte) error { return os.WriteFile(path, data, 0) }}
}

// tune applies mode to dev (a /dev path, symlinks such as /dev/serial/by-id
// followed); any mode other than on and off is auto. It returns what it did, for the log; an error says why nothing
// could be set where something should have been.
func (t latencyTuner) tune(dev string, mode LowLatency) (string, error) {
	if mode == LowLatencyOff {
		return "off: device left as it is", nil
	}
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", fmt.Errorf("low_latency: %w", err)
	}
	tty := filepath.Base(real)
	timer := filepath.Join(t.sysfs, "bus", "usb-serial", "devices", tty, "latency_timer")
	before, err := readMs(timer)
	if errors.Is(err, os.ErrNotExist) {
		if mode != LowLatencyOn {
			return fmt.Sprintf("%s has no latency timer (not an FTDI-style USB adapter): nothing to do", real), nil
		}
		if err := t.setFlag(real); err != nil {
			return "", fmt.Errorf("low_latency on: %s has no latency timer, and ASYNC_LOW_LATENCY: %w", tty, err)
		}
		return fmt.Sprintf("%s: ASYNC_LOW_LATENCY set (no latency timer in sysfs)", tty), nil
	}
	if err != nil {
		return "", fmt.Errorf("low_latency: %w", err)
	}
	if before <= 1 {
		return fmt.Sprintf("%s: latency_timer already %d ms", tty, before), nil
	}
	werr := t.write(timer, []byte("1"))
	if werr != nil {
		// Not root: the flag, set through the device the bridge may open,
		// makes ftdi_sio set the timer to 1 ms itself.
		if ferr := t.setFlag(real); ferr != nil {
			return "", fmt.Errorf("low_latency: %s latency_timer stays %d ms: write %s: %w; ASYNC_LOW_LATENCY: %v (run as root, or install deploy/99-pilebridge-usb-serial.rules)",
				tty, before, timer, werr, ferr)
		}
	}
	after, err := readMs(timer)
	if err != nil {
		return "", fmt.Errorf("low_latency: %w", err)
	}
	if after > 1 {
		return "", fmt.Errorf("low_latency: %s latency_timer still %d ms after setting it (write: %v)", tty, after, werr)
	}
	how := "sysfs"
	if werr != nil {
		how = "ASYNC_LOW_LATENCY"
	}
	return fmt.Sprintf("%s: latency_timer %d → %d ms (%s)", tty, before, after, how), nil
}

func readMs(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number of ms", path, strings.TrimSpace(string(data)))
	}
	return v, nil
}

// setLowLatencyFlag sets ASYNC_LOW_LATENCY with TIOCGSERIAL/TIOCSSERIAL on a
// short-lived descriptor (before the bus opens the port exclusively). The
// flags are the fifth int of struct serial_struct on every architecture;
// the buffer is larger than the struct on any of them.
func setLowLatencyFlag(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	var buf [256]byte
	if err := ioctlPtr(fd, unix.TIOCGSERIAL, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("TIOCGSERIAL: %w", err)
	}
	flags := binary.NativeEndian.Uint32(buf[16:])
	binary.NativeEndian.PutUint32(buf[16:], flags|asyncLowLatency)
	if err := ioctlPtr(fd, unix.TIOCSSERIAL, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("TIOCSSERIAL: %w", err)
	}
	return nil
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}
