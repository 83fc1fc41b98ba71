package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A fake sysfs: a USB adapter, a real UART, an 8250 placeholder, a pty.
func TestListPortsFromSysfs(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	mk := func(p string) { require.NoError(t, os.MkdirAll(filepath.Join(sys, p), 0o755)) }
	write := func(p, v string) { require.NoError(t, os.WriteFile(filepath.Join(sys, p), []byte(v+"\n"), 0o644)) }
	link := func(target, name string) {
		require.NoError(t, os.Symlink(filepath.Join(sys, target), filepath.Join(sys, name)))
	}

	usb := "devices/pci0/usb1/1-1"
	mk(usb + "/1-1:1.0/ttyUSB0")
	write(usb+"/idVendor", "0403")
	write(usb+"/idProduct", "6001")
	write(usb+"/serial", "A50285BI")
	write(usb+"/product", "FT232R USB UART")
	mk("bus/usb-serial/drivers/ftdi_sio")
	link("bus/usb-serial/drivers/ftdi_sio", usb+"/1-1:1.0/ttyUSB0/driver")
	mk("devices/platform/uart0")
	mk("devices/platform/serial8250")
	mk("class/tty/ttyUSB0")
	link(usb+"/1-1:1.0/ttyUSB0", "class/tty/ttyUSB0/device")
	mk("class/tty/ttyAMA0")
	link("devices/platform/uart0", "class/tty/ttyAMA0/device")
	mk("class/tty/ttyS3")
	link("devices/platform/serial8250", "class/tty/ttyS3/device")
	write("class/tty/ttyS3/type", "0")
	mk("class/tty/ttyS0")
	link("devices/platform/serial8250", "class/tty/ttyS0/device")
	write("class/tty/ttyS0/type", "4")
	mk("class/tty/pts0") // no device link

	require.NoError(t, os.MkdirAll(filepath.Join(dev, "serial", "by-id"), 0o755))
	require.NoError(t, os.Symlink("../../ttyUSB0", filepath.Join(dev, "serial", "by-id", "usb-FTDI_FT232R_A50285BI-if00-port0")))

	ports, err := ListPorts(sys, dev)
	require.NoError(t, err)
	var names []string
	for _, p := range ports {
		names = append(names, filepath.Base(p.Name))
	}
	assert.Equal(t, []string{"ttyAMA0", "ttyS0", "ttyUSB0"}, names, "placeholder and pty left out")
	u := ports[2]
	assert.Equal(t, "0403", u.VID)
	assert.Equal(t, "6001", u.PID)
	assert.Equal(t, "A50285BI", u.Serial)
	assert.Equal(t, "FT232R USB UART", u.Product)
	assert.Equal(t, "ftdi_sio", u.Driver)
	assert.Equal(t, filepath.Join(dev, "serial", "by-id", "usb-FTDI_FT232R_A50285BI-if00-port0"), u.ByID)
	assert.Empty(t, ports[0].VID)
}
