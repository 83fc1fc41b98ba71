package driver

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The struct is the kernel's serial_rs485: 32 bytes, flags then the two
// delays in ms, with the flag bits of linux/serial.h.
func TestRS485Encoding(t *testing.T) {
	t.Parallel()
	assert.EqualValues(t, 32, unsafe.Sizeof(serialRS485{}))
	c := RS485{Enabled: true, RTSOnSend: true, RxDuringTx: true, DelayBeforeSend: 3 * time.Millisecond, DelayAfterSend: 12 * time.Millisecond}
	s := c.encode()
	raw := (*[32]byte)(unsafe.Pointer(&s))[:]
	assert.Equal(t, uint32(0b10011), binary.NativeEndian.Uint32(raw[0:]), "ENABLED | RTS_ON_SEND | RX_DURING_TX")
	assert.Equal(t, uint32(3), binary.NativeEndian.Uint32(raw[4:]))
	assert.Equal(t, uint32(12), binary.NativeEndian.Uint32(raw[8:]))
	assert.Equal(t, make([]byte, 20), raw[12:], "padding zero")
	assert.Equal(t, c, s.decode())

	inv := RS485{Enabled: true, RTSAfterSend: true}
	assert.Equal(t, uint32(0b101), inv.encode().Flags)
	assert.Equal(t, inv, inv.encode().decode())
	assert.Equal(t, "off", RS485{}.String())
}

// A pty has no RS-485 mode: the error names it, and the bus does not open.
func TestRS485RefusedOnAPty(t *testing.T) {
	t.Parallel()
	ptm, pts, err := pty.Open()
	require.NoError(t, err)
	defer ptm.Close()
	defer pts.Close()
	_, err = applyRS485(pts.Name(), RS485{Enabled: true, RTSOnSend: true})
	require.Error(t, err)
	if os.Getenv("PILEBRIDGE_QEMU") != "" && errors.Is(err, unix.ENOSYS) {
		t.Skip("qemu-user does not pass TIOCSRS485 through")
	}
	assert.True(t, errors.Is(err, ErrNoRS485), "%v", err)
	assert.Contains(t, err.Error(), "rs485 on "+pts.Name())
}
