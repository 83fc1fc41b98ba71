package driver

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RS485 is the kernel's RS-485 mode of a UART whose transceiver's driver
// enable (DE) pin hangs on RTS: the kernel raises RTS around each frame.
// Boards wired that way cannot talk without it; auto-direction transceivers
// and most USB adapters need none of it.
type RS485 struct {
	Enabled      bool
	RTSOnSend    bool // RTS high while sending (the usual wiring)
	RTSAfterSend bool // RTS high after sending (inverted wiring)
	RxDuringTx   bool // keep receiving while sending (echo; rarely wanted)
	// Delays of RTS around a frame, whole milliseconds.
	DelayBeforeSend, DelayAfterSend time.Duration
}

// ErrNoRS485 is a driver that has no RS-485 mode: a pseudo-terminal, and
// many USB adapters (which switch direction themselves).
var ErrNoRS485 = errors.New("the tty driver has no RS-485 mode (TIOCSRS485 refused)")

// Flags of struct serial_rs485 (linux/serial.h).
const (
	serRS485Enabled      = 1 << 0
	serRS485RTSOnSend    = 1 << 1
	serRS485RTSAfterSend = 1 << 2
	serRS485RxDuringTx   = 1 << 4
)

// serialRS485 is struct serial_rs485: 8 unsigned 32-bit words on every
// architecture.
type serialRS485 struct {
	Flags              uint32
	DelayRTSBeforeSend uint32 // ms
	DelayRTSAfterSend  uint32 // ms
	Padding            [5]uint32
}

func (c RS485) encode() serialRS485 {
	var s serialRS485
	for _, f := range []struct {
		on   bool
		flag uint32
	}{{c.Enabled, serRS485Enabled}, {c.RTSOnSend, serRS485RTSOnSend}, {c.RTSAfterSend, serRS485RTSAfterSend}, {c.RxDuringTx, serRS485RxDuringTx}} {
		if f.on {
			s.Flags |= f.flag
		}
	}
	s.DelayRTSBeforeSend = uint32(c.DelayBeforeSend / time.Millisecond)
	s.DelayRTSAfterSend = uint32(c.DelayAfterSend / time.Millisecond)
	return s
}

func (s serialRS485) decode() RS485 {
	return RS485{
		Enabled: s.Flags&serRS485Enabled != 0, RTSOnSend: s.Flags&serRS485RTSOnSend != 0,
		RTSAfterSend: s.Flags&serRS485RTSAfterSend != 0, RxDuringTx: s.Flags&serRS485RxDuringTx != 0,
		DelayBeforeSend: time.Duration(s.DelayRTSBeforeSend) * time.Millisecond,
		DelayAfterSend:  time.Duration(s.DelayRTSAfterSend) * time.Millisecond,
	}
}

func (c RS485) String() string {
	if !c.Enabled {
		return "off"
	}
	return fmt.Sprintf("on (rts_on_send %t, rts_after_send %t, delay_rts_before_send %s, delay_rts_after_send %s, rx_during_tx %t)",
		c.RTSOnSend, c.RTSAfterSend, c.DelayBeforeSend, c.DelayAfterSend, c.RxDuringTx)
}

// applyRS485 sets the mode on dev through a short-lived descriptor (the
// setting belongs to the port and outlives it) and returns what the driver
// reports back: drivers round delays and may drop flags they cannot do.
func applyRS485(dev string, c RS485) (RS485, error) {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return RS485{}, fmt.Errorf("rs485: open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	s := c.encode()
	if err := ioctlPtr(fd, unix.TIOCSRS485, unsafe.Pointer(&s)); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return RS485{}, fmt.Errorf("rs485 on %s: %w: %v", dev, ErrNoRS485, err)
		}
		return RS485{}, fmt.Errorf("rs485 on %s: TIOCSRS485: %w", dev, err)
	}
	var got serialRS485
	if err := ioctlPtr(fd, unix.TIOCGRS485, unsafe.Pointer(&got)); err != nil {
		return RS485{}, fmt.Errorf("rs485 on %s: TIOCGRS485: %w", dev, err)
	}
	return got.decode(), nil
}
