// Package config reads the daemon's one YAML file and checks every key
// before any port is touched.
package config

import (
	"fmt"
	"pilebridge/internal/limits"
	"strings"
	"time"
)

// Config is the whole file.
type Config struct {
	StationUUID      string        `yaml:"station_uuid"`
	DataDir          string        `yaml:"data_dir"`
	NodeID           string        `yaml:"node_id"`
	LocalUserID      string        `yaml:"local_user_id"`
	ParkingReduction bool          `yaml:"parking_reduction"`
	ProfilesDir      string        `yaml:"profiles_dir"`
	PollInterval     time.Duration `yaml:"poll_interval"`
	HistoryDays      int           `yaml:"history_days"`    // closed sessions kept in the ledger (delivered ones; unsent bills are never dropped)
	BackupInterval   time.Duration `yaml:"backup_interval"` // a hot copy of the database to data_dir/backup, kept two deep
	PIIDays          int           `yaml:"pii_days"`        // delivered bills keep VIN, plate and mobile this long, then they are blanked
	Listen           string        `yaml:"listen"`
	ListenHosts      []string      `yaml:"listen_hosts"`      // Host names the local API answers besides IPs and localhost
	ListenTokenFile  string        `yaml:"listen_token_file"` // bearer token for its POSTs (default: data_dir/listen_token)
	Log              Log           `yaml:"log"`
	Clock            Clock         `yaml:"clock"`
	Platform         Platform      `yaml:"platform"`
	Session          Session       `yaml:"session"`
	Tariff           Tariff        `yaml:"tariff"`
	Plates           Plates        `yaml:"plates"`
	Buses            []Bus         `yaml:"buses"`
	Piles            []Pile        `yaml:"piles"`

	// Warnings are things that work but should not stay so (a secret file
	// others can read); the daemon logs them and check prints them.
	Warnings []string `yaml:"-"`
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
	// MaxBillAge: /healthz reports a bill waiting for delivery longer.
	MaxBillAge time.Duration `yaml:"max_bill_age"`
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
// config is loaded (station.Load, which check and run share).
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

// Values the daemon uses that are not keys of the file, fixed here beside
// the defaults so that no constructor keeps one of its own.
const (
	SenderWorkers = 4               // records posted at once (of different orders)
	SenderBatch   = 64              // records picked per sending round
	DeadAfter     = 3               // failed requests in a row that make a slave dead
	DeadBase      = 2 * time.Second // a dead slave's first backoff
	DeadMax       = time.Minute     // and its longest
)

// SlavePolicy is how one port's slave is talked to: the bus's timeout,
// retries and switch gap, each overridden by the port where it sets one.
type SlavePolicy struct {
	Timeout   time.Duration
	Retries   int
	SwitchGap time.Duration
}

// PolicyOf merges a port's overrides over its bus's values.
func PolicyOf(b Bus, pt Port) SlavePolicy {
	p := SlavePolicy{Timeout: b.Timeout, Retries: b.Retries, SwitchGap: b.SwitchGap}
	if pt.Timeout > 0 {
		p.Timeout = pt.Timeout
	}
	if pt.Retries != nil {
		p.Retries = *pt.Retries
	}
	if pt.SwitchGap > 0 {
		p.SwitchGap = pt.SwitchGap
	}
	return p
}

// Bounds of the file's values, each named once.
const (
	MaxHistoryDays     = 3660 // ten years of ledger
	MaxPlateWindow     = 24 * time.Hour
	DefaultPlateWindow = 10 * time.Minute
	MaxPlateFinalWait  = time.Hour
	DefaultFinalWait   = 2 * time.Minute
	MinPollInterval    = 100 * time.Millisecond
	MinBackupInterval  = time.Minute
	MinBusTimeout      = 10 * time.Millisecond
	MaxBusTimeout      = 10 * time.Second
	MaxPersistInterval = 10 * time.Minute
	MinMaxBillAge      = time.Minute
)

// MaxRatedPowerW is the largest rated power accepted.
const MaxRatedPowerW = limits.MaxPowerW

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
	// LowLatency: auto, on or off (driver.LowLatency). USB adapters with a
	// latency timer hold received bytes up to 16 ms unless it is lowered.
	LowLatency string `yaml:"low_latency"`
	// RS485: the kernel's RS-485 mode (TIOCSRS485), for a UART whose
	// transceiver's DE pin is on RTS.
	RS485 *RS485 `yaml:"rs485"`
}

// RS485 is a bus's kernel RS-485 mode.
type RS485 struct {
	Enabled            bool          `yaml:"enabled"`
	RTSOnSend          *bool         `yaml:"rts_on_send"` // default true when enabled
	RTSAfterSend       bool          `yaml:"rts_after_send"`
	DelayRTSBeforeSend time.Duration `yaml:"delay_rts_before_send"`
	DelayRTSAfterSend  time.Duration `yaml:"delay_rts_after_send"`
	RxDuringTx         bool          `yaml:"rx_during_tx"`
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
	// Unwritable: data_dir cannot be written. A command that only reads
	// the store (LoadToRead) accepts that: a card the kernel turned
	// read-only is still read.
	Unwritable bool
}

func (e *Error) Error() string { return fmt.Sprintf("config %s: %s: %s", e.File, e.Key, e.Msg) }

// Errors is every mistake found in one file, reported at once.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// PortKey names a port as everything in the bridge does: device_no/port_no.
func PortKey(deviceNo, portNo string) string { return deviceNo + "/" + portNo }

// PortKeys are the configured ports' keys.
func (c *Config) PortKeys() map[string]bool {
	keys := map[string]bool{}
	for _, pl := range c.Piles {
		for _, pt := range pl.Ports {
			keys[PortKey(pl.DeviceNo, pt.PortNo)] = true
		}
	}
	return keys
}

// MinDate is clock.min_date parsed.
func (c *Config) MinDate() time.Time {
	t, _ := time.Parse("2006-01-02", c.Clock.MinDate)
	return t
}
