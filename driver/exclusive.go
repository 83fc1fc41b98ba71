package driver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// One master per RS-485 line: two masters collide on the wire and each
// takes the other's replies. go.bug.st/serial sets TIOCEXCL on the tty,
// which refuses a second open by anyone but root; and root is who runs
// `pilebridge read` on a board. So every open of a serial line also takes
// an exclusive flock(2) on the device, which binds root too: the daemon,
// `read` and `scan --probe` each refuse a line another of them holds, and
// name the holder.

// InUseError says a serial line is held by another process.
type InUseError struct {
	Device string
	PID    int    // 0 when the holder could not be found
	Cmd    string // the holder's command line, if readable
}

func (e *InUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("pid %d", e.PID)
		if e.Cmd != "" {
			who += " (" + e.Cmd + ")"
		}
	}
	return fmt.Sprintf("serial line %s is in use by %s: one master per RS-485 line; stop it first (systemctl stop pilebridge), or read the running daemon's /status", e.Device, who)
}

// claim opens device and takes the exclusive lock on it; the returned file
// holds the lock until it is closed.
func claim(device string) (*os.File, error) {
	fd, err := unix.Open(device, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, holderOf(device) // TIOCEXCL: another process has it open
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", device, err)
	}
	f := os.NewFile(uintptr(fd), device)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, holderOf(device)
		}
		return nil, fmt.Errorf("lock %s: %w", device, err)
	}
	return f, nil
}

// holderOf finds who holds the flock on device, from /proc/locks.
func holderOf(device string) *InUseError {
	e := &InUseError{Device: device}
	var st unix.Stat_t
	if unix.Stat(device, &st) != nil {
		return e
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return e
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 1234 00:05:87 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[5] != want {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil {
			continue
		}
		e.PID = pid
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			e.Cmd = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		}
		break
	}
	return e
}
