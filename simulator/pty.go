package simulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PtyLine is a virtual RS-485 line: the simulator holds the master end, the
// bridge opens SlavePath like any serial device.
type PtyLine struct {
	master    *os.File
	mu        sync.Mutex
	slave     *os.File // held open so the line survives the bridge closing it
	SlavePath string
	link      string
	isClosed  bool
}

func (l *PtyLine) closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isClosed
}

// OpenPty creates the pair, puts it in raw mode and, if link is set, points a
// symlink at the slave end (replacing a stale one).
func OpenPty(link string) (*PtyLine, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	if err := makeRaw(int(s.Fd())); err != nil {
		m.Close()
		s.Close()
		return nil, fmt.Errorf("raw mode on %s: %w", s.Name(), err)
	}
	l := &PtyLine{master: m, slave: s, SlavePath: s.Name()}
	if link != "" {
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			l.Close()
			return nil, err
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.Close()
			return nil, err
		}
		if err := os.Symlink(s.Name(), link); err != nil {
			l.Close()
			return nil, fmt.Errorf("link %s: %w", link, err)
		}
		l.link = link
	}
	return l, nil
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Read and Write are the master end: what the slave devices hear and say.
func (l *PtyLine) Read(p []byte) (int, error)  { return l.master.Read(p) }
func (l *PtyLine) Write(p []byte) (int, error) { return l.master.Write(p) }

// Hangup drops the line as an unplugged USB adapter does: every open file of
// the slave end is hung up. The simulator then reopens its own hold on it so
// the bridge can reconnect.
func (l *PtyLine) Hangup() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := unix.IoctlSetInt(int(l.slave.Fd()), unix.TIOCVHANGUP, 0); err != nil {
		return fmt.Errorf("hang up %s: %w", l.SlavePath, err)
	}
	l.slave.Close()
	s, err := os.OpenFile(l.SlavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", l.SlavePath, err)
	}
	l.slave = s
	return makeRaw(int(s.Fd()))
}

// Close removes the link and closes both ends.
func (l *PtyLine) Close() error {
	if l.link != "" {
		_ = os.Remove(l.link)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.isClosed = true
	l.slave.Close()
	return l.master.Close()
}

// AttachPty makes the server answer on the pty line and hang it up on a
// FaultHangup. It returns when the line is closed.
func (s *Server) AttachPty(l *PtyLine) error {
	s.mu.Lock()
	s.hangup = func() {
		if err := l.Hangup(); err != nil {
			s.Log.Error().Err(err).Msg("hangup")
		}
	}
	s.mu.Unlock()
	for {
		err := s.ServeRTU(l)
		if !errors.Is(err, unix.EIO) {
			return err
		}
		// EIO on the master while the slave end is hung up or being reopened
		if l.closed() {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
