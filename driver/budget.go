package driver

import "time"

// ReadTime is the line time of one register read (function 03 or 04) of
// count registers at baud on an RS-485 line: the 8-byte request and the
// (5 + 2×count)-byte reply at 11 bits a character (start, 8 data, parity
// or a second stop bit, stop), each frame preceded by 3.5 characters of
// silence (before the request, and the slave's turnaround before its
// reply), fixed at 1.75 ms above 19200 baud as the Modbus serial line
// spec says. A slave that answers slower than the spec adds its own delay.
func ReadTime(baud int, count uint16) time.Duration {
	if baud <= 0 {
		return 0
	}
	char := 11 * float64(time.Second) / float64(baud)
	bytes := 8 + 5 + 2*float64(count)
	return time.Duration(bytes*char) + 2*silenceFor(baud)
}
