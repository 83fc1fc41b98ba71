package driver

// What Modbus and the lines allow, owned here and used by the config's
// checks and the commands' flags alike.
const (
	// MinSlave and MaxSlave bound a unit id on a serial line (0 is the
	// broadcast address, 248..255 are reserved).
	MinSlave = 1
	MaxSlave = 247
	// MinBaud and MaxBaud bound a serial line's rate.
	MinBaud = 300
	MaxBaud = 921600
	// MaxRetries bounds the retries of one exchange: more only hides a
	// failing line and makes a poll round late.
	MaxRetries = 5
)

// DefaultSerial is a line's setting when nothing says otherwise: 9600 8N1,
// what most meters and piles ship with.
var DefaultSerial = SerialParams{Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}

// DefaultSlave is the unit id a device ships with.
const DefaultSlave = 1
