// Package config reads the daemon's one YAML file and checks every key
// before any port is touched.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole file.
type Config struct {
	StationUUID      string            `yaml:"station_uuid"`
	DataDir          string            `yaml:"data_dir"`
	NodeID           string            `yaml:"node_id"`
	LocalUserID      string            `yaml:"local_user_id"`
	ParkingReduction bool              `yaml:"parking_reduction"`
	ProfilesDir      string            `yaml:"profiles_dir"`
	PollInterval     time.Duration     `yaml:"poll_interval"`
	Listen           string            `yaml:"listen"`
	Log              Log               `yaml:"log"`
	Clock            Clock             `yaml:"clock"`
	Platform         Platform          `yaml:"platform"`
	Session          Session           `yaml:"session"`
	Tariff           Tariff            `yaml:"tariff"`
	Plates           map[string]string `yaml:"plates"`
	Buses            []Bus             `yaml:"buses"`
	Piles            []Pile            `yaml:"piles"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json, console or auto (console on a terminal)
}

// Clock says when the board's clock is believed.
type Clock struct {
	MinDate    string `yaml:"min_date"`
	SyncedFile string `yaml:"synced_file"`
}

// Platform is the P云 connection.
type Platform struct {
	BaseURL            string        `yaml:"base_url"`
	AppID              string        `yaml:"app_id"`
	AppSecret          string        `yaml:"app_secret"`
	AppSecretFile      string        `yaml:"app_secret_file"`
	ProgressInterval   time.Duration `yaml:"progress_interval"`
	DeviceSyncInterval time.Duration `yaml:"device_sync_interval"`
	Timeout            time.Duration `yaml:"timeout"`
	RetryBase          time.Duration `yaml:"retry_base"`
	RetryMax           time.Duration `yaml:"retry_max"`
	OutboxMaxRecords   int           `yaml:"outbox_max_records"`
}

// Session tunes the state machine.
type Session struct {
	StartTimeout time.Duration `yaml:"start_timeout"`
	OfflineAfter time.Duration `yaml:"offline_after"`
	OfflineClose time.Duration `yaml:"offline_close"`
	HoldPolls    int           `yaml:"hold_polls"`
	// PersistInterval batches storing plain energy readings to spare flash
	// (0: store every accepted reading). See docs/billing.md.
	PersistInterval time.Duration `yaml:"persist_interval"`
}

// Tariff is the time-of-use price table. Its rules (coverage, prices, zone)
// are checked where tariffs are understood, by session.NewTariff, when the
// config is loaded (cmd/pilebridge load).
type Tariff struct {
	TimeZone string   `yaml:"time_zone"`
	Periods  []Period `yaml:"periods"`
}

// Period is one tariff period as written: "HH:MM" bounds, prices as text.
type Period struct {
	Start       string `yaml:"start"`
	End         string `yaml:"end"`
	Type        string `yaml:"type"`
	Electricity string `yaml:"electricity"`
	Service     string `yaml:"service"`
}

// MaxRatedPowerW is the largest rated power accepted (2 MW: more than any
// charging pile, and small enough that energy limits never overflow).
const MaxRatedPowerW = 2_000_000

// Bus is one RS-485 line or TCP gateway.
type Bus struct {
	Name      string        `yaml:"name"`
	Device    string        `yaml:"device"`
	Baud      int           `yaml:"baud"`
	Parity    string        `yaml:"parity"`
	DataBits  int           `yaml:"data_bits"`
	StopBits  int           `yaml:"stop_bits"`
	Timeout   time.Duration `yaml:"timeout"`
	Retries   int           `yaml:"retries"`
	SwitchGap time.Duration `yaml:"switch_gap"`
}

// Pile is one charging pile.
type Pile struct {
	DeviceNo    string `yaml:"device_no"`
	Name        string `yaml:"name"`
	DeviceType  int    `yaml:"device_type"`
	EnergyCode  string `yaml:"energy_code"`
	Bus         string `yaml:"bus"`
	RatedPowerW int64  `yaml:"rated_power_w"`
	Ports       []Port `yaml:"ports"`
}

// Port is one charging port (gun) of a pile.
type Port struct {
	PortNo       string        `yaml:"port_no"`
	Alias        string        `yaml:"alias"`
	Slave        int           `yaml:"slave"`
	Profile      string        `yaml:"profile"`
	PT           int64         `yaml:"pt"`
	CT           int64         `yaml:"ct"`
	Timeout      time.Duration `yaml:"timeout"`
	Retries      *int          `yaml:"retries"`
	SwitchGap    time.Duration `yaml:"switch_gap"`
	PollInterval time.Duration `yaml:"poll_interval"`
	MeterOnly    MeterOnly     `yaml:"meter_only"`
}

// MeterOnly sets how a port without a status register finds its sessions.
type MeterOnly struct {
	StartPowerW int64         `yaml:"start_power_w"`
	StartFor    time.Duration `yaml:"start_for"`
	StopPowerW  int64         `yaml:"stop_power_w"`
	StopFor     time.Duration `yaml:"stop_for"`
}

// Error names the key that is wrong.
type Error struct {
	File string
	Key  string
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("config %s: %s: %s", e.File, e.Key, e.Msg) }

// Load reads, defaults and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

var lineRe = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// Parse is Load on bytes; name is used in errors.
func Parse(data []byte, name string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		msg := err.Error()
		if m := lineRe.FindStringSubmatch(msg); m != nil {
			return nil, &Error{File: name, Key: m[2], Msg: "unknown key (line " + m[1] + ")"}
		}
		return nil, &Error{File: name, Key: "(yaml)", Msg: strings.TrimPrefix(msg, "yaml: ")}
	}
	c.defaults()
	if err := c.validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = name
		}
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.LocalUserID == "" {
		c.LocalUserID = "pilebridge"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	if c.Clock.MinDate == "" {
		c.Clock.MinDate = "2025-01-01"
	}
	def(&c.PollInterval, time.Second)
	def(&c.Platform.ProgressInterval, time.Minute)
	def(&c.Platform.DeviceSyncInterval, 5*time.Minute)
	def(&c.Platform.Timeout, 10*time.Second)
	def(&c.Platform.RetryBase, 2*time.Second)
	def(&c.Platform.RetryMax, 5*time.Minute)
	if c.Platform.OutboxMaxRecords == 0 {
		c.Platform.OutboxMaxRecords = 100_000
	}
	if len(c.Tariff.Periods) == 0 {
		c.Tariff.Periods = []Period{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "0", Service: "0"}}
	}
	for i := range c.Buses {
		b := &c.Buses[i]
		if b.Baud == 0 {
			b.Baud = 9600
		}
		if b.DataBits == 0 {
			b.DataBits = 8
		}
		if b.Parity == "" {
			b.Parity = "N"
		}
		if b.StopBits == 0 {
			b.StopBits = 1
		}
		def(&b.Timeout, 500*time.Millisecond)
	}
	for i := range c.Piles {
		for j := range c.Piles[i].Ports {
			p := &c.Piles[i].Ports[j]
			if p.PT == 0 {
				p.PT = 1
			}
			if p.CT == 0 {
				p.CT = 1
			}
			if p.PollInterval == 0 {
				p.PollInterval = c.PollInterval
			}
			m := &p.MeterOnly
			if m.StartPowerW == 0 {
				m.StartPowerW = 500
			}
			if m.StopPowerW == 0 {
				m.StopPowerW = 100
			}
			def(&m.StartFor, 30*time.Second)
			def(&m.StopFor, 2*time.Minute)
		}
	}
}

func bad(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() error {
	if c.StationUUID == "" {
		return bad("station_uuid", "required: the station number from the P云 console")
	}
	if c.DataDir == "" {
		return bad("data_dir", "required: where sessions and the outbox are kept (e.g. /var/lib/pilebridge)")
	}
	if len(c.NodeID) > 8 || !regexp.MustCompile(`^[0-9A-Za-z]*$`).MatchString(c.NodeID) {
		return bad("node_id", "%q: up to 8 letters or digits", c.NodeID)
	}
	if _, err := time.Parse("2006-01-02", c.Clock.MinDate); err != nil {
		return bad("clock.min_date", "%q: want YYYY-MM-DD", c.Clock.MinDate)
	}
	switch c.Log.Format {
	case "json", "console", "auto":
	default:
		return bad("log.format", "%q: want json, console or auto", c.Log.Format)
	}
	p := c.Platform
	if !strings.HasPrefix(p.BaseURL, "https://") && !strings.HasPrefix(p.BaseURL, "http://") {
		return bad("platform.base_url", "%q: want https://api.4pyun.com, https://dev-api.4pyun.com or a stand-in URL", p.BaseURL)
	}
	if p.AppID == "" {
		return bad("platform.app_id", "required")
	}
	if (p.AppSecret == "") == (p.AppSecretFile == "") {
		return bad("platform.app_secret", "give exactly one of app_secret or app_secret_file")
	}
	if p.AppSecretFile != "" {
		b, err := os.ReadFile(p.AppSecretFile)
		if err != nil {
			return bad("platform.app_secret_file", "%v", err)
		}
		c.Platform.AppSecret = strings.TrimSpace(string(b))
		if c.Platform.AppSecret == "" {
			return bad("platform.app_secret_file", "%s is empty", p.AppSecretFile)
		}
	}
	if c.Session.PersistInterval < 0 || c.Session.PersistInterval > 10*time.Minute {
		return bad("session.persist_interval", "%v: want 0 (every reading) up to 10m", c.Session.PersistInterval)
	}
	if p.ProgressInterval < time.Second {
		return bad("platform.progress_interval", "%v: at least 1s", p.ProgressInterval)
	}
	buses := map[string]bool{}
	for i, b := range c.Buses {
		key := fmt.Sprintf("buses[%d]", i)
		if b.Name == "" {
			return bad(key+".name", "required")
		}
		if buses[b.Name] {
			return bad(key+".name", "%q used twice", b.Name)
		}
		buses[b.Name] = true
		if b.Device == "" {
			return bad(key+".device", "required: a serial path (/dev/ttyUSB0, /dev/serial/by-id/...) or tcp://host:port or rtuovertcp://host:port")
		}
		switch strings.ToUpper(b.Parity) {
		case "N", "E", "O":
		default:
			return bad(key+".parity", "%q: want N, E or O", b.Parity)
		}
		if b.StopBits != 1 && b.StopBits != 2 {
			return bad(key+".stop_bits", "%d: want 1 or 2", b.StopBits)
		}
		if b.DataBits != 7 && b.DataBits != 8 {
			return bad(key+".data_bits", "%d: want 8 (or 7)", b.DataBits)
		}
		if b.Baud < 300 || b.Baud > 921600 {
			return bad(key+".baud", "%d: want 300..921600", b.Baud)
		}
		if b.Timeout < 10*time.Millisecond || b.Timeout > 10*time.Second {
			return bad(key+".timeout", "%v: want 10ms..10s", b.Timeout)
		}
		if b.Retries < 0 || b.Retries > 5 {
			return bad(key+".retries", "%d: want 0..5", b.Retries)
		}
	}
	devices, slaves := map[string]bool{}, map[string]string{}
	for i, pl := range c.Piles {
		key := fmt.Sprintf("piles[%d]", i)
		if pl.DeviceNo == "" {
			return bad(key+".device_no", "required")
		}
		if devices[pl.DeviceNo] {
			return bad(key+".device_no", "%q used twice", pl.DeviceNo)
		}
		devices[pl.DeviceNo] = true
		if pl.DeviceType != 0 && pl.DeviceType != 1 {
			return bad(key+".device_type", "%d: want 0 (car) or 1 (two-wheeler)", pl.DeviceType)
		}
		if pl.EnergyCode != "CN_AC" && pl.EnergyCode != "CN_DC" {
			return bad(key+".energy_code", "%q: want CN_AC or CN_DC", pl.EnergyCode)
		}
		if !buses[pl.Bus] {
			return bad(key+".bus", "%q is not a configured bus", pl.Bus)
		}
		if pl.RatedPowerW < 0 || pl.RatedPowerW > MaxRatedPowerW {
			return bad(key+".rated_power_w", "%d: want 0 (no plausibility check) up to %d W", pl.RatedPowerW, MaxRatedPowerW)
		}
		if len(pl.Ports) == 0 {
			return bad(key+".ports", "at least one port")
		}
		ports := map[string]bool{}
		for j, pt := range pl.Ports {
			pk := fmt.Sprintf("%s.ports[%d]", key, j)
			if pt.PortNo == "" {
				return bad(pk+".port_no", "required")
			}
			if ports[pt.PortNo] {
				return bad(pk+".port_no", "%q used twice on this pile", pt.PortNo)
			}
			ports[pt.PortNo] = true
			if pt.Slave < 1 || pt.Slave > 247 {
				return bad(pk+".slave", "%d: want 1..247", pt.Slave)
			}
			sk := fmt.Sprintf("%s/%d", pl.Bus, pt.Slave)
			if other, dup := slaves[sk]; dup {
				return bad(pk+".slave", "slave %d on bus %s is also %s", pt.Slave, pl.Bus, other)
			}
			slaves[sk] = pk
			if pt.Profile == "" {
				return bad(pk+".profile", "required (see `pilebridge profiles`)")
			}
			if pt.PT < 1 || pt.CT < 1 || pt.PT > 10000 || pt.CT > 10000 {
				return bad(pk+".pt", "pt and ct must be 1..10000 (a ratio such as 400/5 is ct: 80)")
			}
			if pt.PollInterval < 100*time.Millisecond {
				return bad(pk+".poll_interval", "%v: at least 100ms", pt.PollInterval)
			}
			if pt.Retries != nil && (*pt.Retries < 0 || *pt.Retries > 5) {
				return bad(pk+".retries", "%d: want 0..5", *pt.Retries)
			}
		}
	}
	return nil
}

// MinDate is clock.min_date parsed.
func (c *Config) MinDate() time.Time {
	t, _ := time.Parse("2006-01-02", c.Clock.MinDate)
	return t
}
