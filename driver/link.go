package driver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"syscall"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// link is the byte stream under a transporter: a serial port or a TCP socket.
type link interface {
	Write(p []byte) (int, error)
	// ReadBefore reads whatever arrives before deadline. It returns ErrTimeout,
	// never (0, nil), when nothing came.
	ReadBefore(p []byte, deadline time.Time) (int, error)
	// Discard drops bytes already received: late replies and line noise.
	// It returns how many it dropped, where the link can tell (0 if not).
	Discard() (int, error)
	Close() error
}

// SerialParams describe an RS-485 line. Every field is set explicitly because
// go.bug.st/serial defaults to 8N1 while Modbus RTU defaults to 8E1.
type SerialParams struct {
	Device   string
	Baud     int
	DataBits int
	Parity   string // "N", "E" or "O"
	StopBits int    // 1 or 2
	// LowLatency: ask a USB adapter not to hold received bytes (latency.go).
	LowLatency LowLatency
	// RS485: the kernel's RS-485 mode, for DE on RTS (rs485.go).
	RS485 RS485
}

func (p SerialParams) mode() (*serial.Mode, error) {
	m := &serial.Mode{BaudRate: p.Baud, DataBits: p.DataBits}
	switch p.Parity {
	case "N", "n", "none":
		m.Parity = serial.NoParity
	case "E", "e", "even":
		m.Parity = serial.EvenParity
	case "O", "o", "odd":
		m.Parity = serial.OddParity
	default:
		return nil, fmt.Errorf("parity %q: want N, E or O", p.Parity)
	}
	switch p.StopBits {
	case 1:
		m.StopBits = serial.OneStopBit
	case 2:
		m.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("stop bits %d: want 1 or 2", p.StopBits)
	}
	return m, nil
}

type serialLink struct {
	port serial.Port
	fd   int      // the port's descriptor, polled by ReadBefore itself
	lock *os.File // the exclusive claim on the line (exclusive.go)
	// ppoll's arguments, kept: every read of every exchange takes them
	poll [1]unix.PollFd
	wait unix.Timespec
}

// portFD is the descriptor of a port go.bug.st/serial v1.8.0 opened (the
// version go.mod pins; TestPortDescriptorIsFound holds the field). Its Read
// waits with select(2), whose fd_set holds descriptors below 1024 only: in
// a daemon with many connections open a port gets a higher one and the read
// panics (index out of range in unix.FdSet). ReadBefore polls the
// descriptor with ppoll(2) instead, which has no such limit.
func portFD(p serial.Port) (int, error) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return -1, fmt.Errorf("go.bug.st/serial: a port of type %T, not the v1.8.0 one", p)
	}
	f := v.Elem().FieldByName("handle")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return -1, fmt.Errorf("go.bug.st/serial: %T has no descriptor field (a version other than v1.8.0?)", p)
	}
	return int(f.Int()), nil
}

func openSerial(p SerialParams) (link, error) {
	mode, err := p.mode()
	if err != nil {
		return nil, err
	}
	lock, err := claim(p.Device)
	if err != nil {
		return nil, err
	}
	port, err := serial.Open(p.Device, mode)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open %s: %w", p.Device, err)
	}
	fd, err := portFD(port)
	if err != nil {
		port.Close()
		lock.Close()
		return nil, fmt.Errorf("open %s: %w", p.Device, err)
	}
	return &serialLink{port: port, fd: fd, lock: lock}, nil
}

func (l *serialLink) Write(p []byte) (int, error) { return l.port.Write(p) }

// ReadBefore waits for bytes with ppoll(2), precise to the nanosecond as
// select was, on the port's own descriptor (portFD), and reads them.
func (l *serialLink) ReadBefore(p []byte, deadline time.Time) (int, error) {
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, ErrTimeout
		}
		l.poll[0] = unix.PollFd{Fd: int32(l.fd), Events: unix.POLLIN}
		l.wait = unix.NsecToTimespec(int64(wait))
		n, err := unix.Ppoll(l.poll[:], &l.wait, nil)
		if errors.Is(err, unix.EINTR) {
			continue // a signal (the runtime's preemption): wait out the rest
		}
		if err != nil {
			return 0, fmt.Errorf("poll the serial port: %w", err)
		}
		if n == 0 {
			return 0, ErrTimeout
		}
		if l.poll[0].Revents&unix.POLLNVAL != 0 {
			return 0, fmt.Errorf("serial port closed: %w", io.EOF)
		}
		m, err := unix.Read(l.fd, p)
		switch {
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return 0, fmt.Errorf("read the serial port: %w", err)
		case m == 0:
			// Linux leaves a port whose device went away (a USB adapter
			// pulled) readable with nothing to read
			return 0, fmt.Errorf("serial device gone: %w", io.EOF)
		}
		return m, nil
	}
}

func (l *serialLink) Discard() (int, error) { return 0, l.port.ResetInputBuffer() }
func (l *serialLink) Close() error {
	err := l.port.Close()
	l.lock.Close() // after the port: the line is free once nothing of ours is on it
	return err
}

type tcpLink struct{ conn net.Conn }

func dialTCP(addr string, timeout time.Duration) (link, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &tcpLink{conn: c}, nil
}

func (l *tcpLink) Write(p []byte) (int, error) {
	if err := l.conn.SetWriteDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return 0, err
	}
	return l.conn.Write(p)
}

func (l *tcpLink) ReadBefore(p []byte, deadline time.Time) (int, error) {
	if err := l.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := l.conn.Read(p)
	if n == 0 && isTimeout(err) {
		return 0, ErrTimeout
	}
	if isTimeout(err) {
		err = nil
	}
	return n, err
}

// Discard drops what the socket has already received, without waiting: a
// non-blocking recv, so no deadline timer and no timeout error on every
// exchange (it ran on each of 256 polls a second in make bench-scale).
func (l *tcpLink) Discard() (int, error) {
	sc, ok := l.conn.(syscall.Conn)
	if !ok {
		return l.discardWithDeadline()
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	// A read deadline already past (the last exchange's) would fail the raw
	// read before it is tried.
	if err := l.conn.SetReadDeadline(time.Time{}); err != nil {
		return 0, err
	}
	var buf [512]byte
	for total := 0; ; {
		if total >= maxDiscard {
			return total, errBabble // the gateway streams faster than it can be drained
		}
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf[:], unix.MSG_DONTWAIT)
			return true // never wait for readiness
		}); err != nil {
			return total, err
		}
		switch {
		case errors.Is(rerr, unix.EAGAIN), errors.Is(rerr, unix.EINTR):
			return total, nil
		case rerr != nil:
			return total, fmt.Errorf("discard: %w", rerr)
		case n == 0:
			return total, fmt.Errorf("discard: %w", io.EOF) // the gateway closed the connection
		}
		total += n
		if n < len(buf) {
			return total, nil
		}
	}
}

// maxDiscard bounds Discard: stale input is a late reply or two, never more.
const maxDiscard = 8 << 10

// discardWithDeadline is Discard for a connection without a descriptor.
func (l *tcpLink) discardWithDeadline() (int, error) {
	var buf [512]byte
	for total := 0; ; {
		if total >= maxDiscard {
			return total, errBabble
		}
		if err := l.conn.SetReadDeadline(time.Now().Add(50 * time.Microsecond)); err != nil {
			return total, err
		}
		n, err := l.conn.Read(buf[:])
		total += n
		if err != nil {
			if isTimeout(err) {
				return total, nil
			}
			return total, err
		}
		if n == 0 {
			return total, nil
		}
	}
}

func (l *tcpLink) Close() error { return l.conn.Close() }

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded))
}
