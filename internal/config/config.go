// Package config reads the daemon's one YAML file and checks every key
// before any port is touched.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"pilebridge/driver"
	"pilebridge/internal/limits"
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

// Load reads, defaults and validates a config file.
func Load(path string) (*Config, error) {
	c, err := LoadAll(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadToRead is Load for a command that only reads the store (`sessions`,
// `outbox list`): a data_dir it cannot write is no mistake to it.
func LoadToRead(path string) (*Config, error) {
	c, err := LoadAll(path)
	var errs Errors
	if err == nil || !errors.As(err, &errs) {
		return c, err
	}
	var left Errors
	for _, e := range errs {
		if !e.Unwritable {
			left = append(left, e)
		}
	}
	if len(left) > 0 {
		return nil, left
	}
	return c, nil
}

var (
	uuidRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	lineRe    = regexp.MustCompile(`^line (\d+):`)
	unknownRe = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)
	dupRe     = regexp.MustCompile(`line (\d+): mapping key "([^"]+)" already defined at line (\d+)`)
	typeRe    = regexp.MustCompile("line (\\d+): cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

// Parse is Load on bytes; name is used in errors.
func Parse(data []byte, name string) (*Config, error) {
	c, err := ParseAll(data, name)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadAll is Load that also returns what could be read of a file with
// mistakes, so that the caller's own checks (tariff, profiles) can report
// theirs in the same run; the config is nil only when the file is not YAML.
func LoadAll(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Key: "(file)", Msg: err.Error()}}
	}
	c, err := ParseAll(data, path)
	if c != nil {
		if w := inlineSecretWarning(path, c); w != "" {
			c.Warnings = append(c.Warnings, w)
		}
	}
	return c, err
}

// ParseAll is LoadAll on bytes: every mistake of the file at once. Unknown
// keys and values of the wrong type are reported, the rest of the file is
// read leniently and validated too (a key with a type error is not
// reported twice).
func ParseAll(data []byte, name string) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Key: "(file)", Msg: "empty: want at least station_uuid, data_dir, platform, buses and piles (see configs/example.yaml)"}}
		}
		return nil, Errors{syntaxError(name, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, Errors{{File: name, Key: "(file)", Msg: fmt.Sprintf("a second YAML document at line %d: one file holds one config", extra.Line)}}
	}
	var c Config
	var errs Errors
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&c); err != nil {
		paths := keyPaths(&root)
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Errors{syntaxError(name, data, err)}
		}
		for _, m := range te.Errors {
			errs = append(errs, typeError(name, m, paths, keyLines(&root)))
		}
		c = Config{}
		_ = yaml.Unmarshal(data, &c) // what can be read; its type errors are the ones above
	}
	c.defaults()
	typed := map[string]bool{}
	for _, e := range errs {
		typed[e.Key] = true
	}
	for _, e := range c.validate() {
		if !typed[e.Key] {
			errs = append(errs, e)
		}
	}
	for _, e := range errs {
		e.File = name
	}
	if len(errs) > 0 {
		return &c, errs
	}
	return &c, nil
}

// keyPaths maps each line of the file to the dotted key paths whose values
// start there, for naming keys in YAML type errors.
func keyPaths(root *yaml.Node) map[int][]pathAt {
	out := map[int][]pathAt{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, k := range n.Content {
				walk(k, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				v := n.Content[i+1]
				out[v.Line] = append(out[v.Line], pathAt{p, v.Value})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				out[v.Line] = append(out[v.Line], pathAt{p, v.Value})
				walk(v, p)
			}
		}
	}
	walk(root, "")
	return out
}

type pathAt struct{ path, value string }

// keyLines maps each line to the dotted paths of the keys written on it.
func keyLines(root *yaml.Node) map[int][]string {
	out := map[int][]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, k := range n.Content {
				walk(k, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				out[n.Content[i].Line] = append(out[n.Content[i].Line], p)
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				walk(v, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(root, "")
	return out
}

// syntaxError says what the YAML parser could not read: a key given twice,
// a tab where YAML wants spaces, or the parser's own words.
func syntaxError(file string, data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := dupRe.FindStringSubmatch(msg); m != nil {
		return dupError(file, m)
	}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		lines := strings.Split(string(data), "\n")
		// the parser names the line it stopped at: the tab is there or
		// just before
		for _, i := range []int{n - 1, n - 2} {
			if i >= 0 && i < len(lines) && strings.Contains(lines[i], "\t") {
				return &Error{File: file, Key: fmt.Sprintf("line %d", i+1),
					Msg: "a tab character: YAML indents with spaces only; replace the tab with spaces (the parser said: " + msg + ")"}
			}
		}
	}
	return &Error{File: file, Key: "(yaml)", Msg: msg}
}

func dupError(file string, m []string) *Error {
	return &Error{File: file, Key: m[2], Msg: fmt.Sprintf("given twice (lines %s and %s)", m[3], m[1])}
}

// typeError names the key of one YAML type error: its full path, and for
// an unknown key the known key it is closest to.
func typeError(file, msg string, paths map[int][]pathAt, keys map[int][]string) *Error {
	if m := dupRe.FindStringSubmatch(msg); m != nil {
		return dupError(file, m)
	}
	if m := unknownRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key := m[2]
		for _, p := range keys[line] {
			if p == m[2] || strings.HasSuffix(p, "."+m[2]) {
				key = p
				break
			}
		}
		msg := "unknown key (line " + m[1] + ")"
		if s := suggest(key); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		return &Error{File: file, Key: key, Msg: msg}
	}
	m := typeRe.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: file, Key: "(yaml)", Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	key := "line " + m[1]
	for _, p := range paths[line] {
		if p.value == m[3] {
			key = p.path
			break
		}
	}
	want := map[string]string{
		"time.Duration": "want a duration such as 500ms, 30s or 2m",
		"int":           "want a whole number", "int64": "want a whole number", "bool": "want true or false",
		"string": "want text", "uint8": "want a whole number",
	}[m[4]]
	if want == "" {
		want = "want " + strings.TrimPrefix(m[4], "config.")
	}
	if strings.HasPrefix(m[4], "[]") {
		want = "want a list"
	} else if strings.HasPrefix(m[4], "config.") || strings.HasPrefix(m[4], "map[") {
		want = "want a mapping (key: value)"
	}
	return &Error{File: file, Key: key, Msg: fmt.Sprintf("%s: %s", m[3], want)}
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
	if c.HistoryDays == 0 {
		c.HistoryDays = 90
	}
	def(&c.BackupInterval, time.Hour)
	def(&c.Plates.Window, DefaultPlateWindow)
	def(&c.Plates.FinalWait, DefaultFinalWait)
	if c.PIIDays == 0 {
		c.PIIDays = min(30, max(c.HistoryDays, 1))
	}
	if c.Tariff.TimeZone == "" {
		c.Tariff.TimeZone = "Asia/Shanghai"
	}
	// the session engine's defaults are set here, where every other default
	// is: /healthz reads offline_after too, and a zero there was a red box
	// forever on a config without a session section
	def(&c.Session.StartTimeout, 2*time.Minute)
	def(&c.Session.OfflineAfter, 30*time.Second)
	def(&c.Session.OfflineClose, 6*time.Hour)
	if c.Session.HoldPolls == 0 {
		c.Session.HoldPolls = 3
	}
	def(&c.Platform.ProgressInterval, time.Minute)
	def(&c.Platform.DeviceSyncInterval, 5*time.Minute)
	def(&c.Platform.Timeout, 10*time.Second)
	def(&c.Platform.RetryBase, 2*time.Second)
	def(&c.Platform.RetryMax, 5*time.Minute)
	def(&c.Platform.MaxBillAge, time.Hour)
	if c.Platform.OutboxMaxRecords == 0 {
		c.Platform.OutboxMaxRecords = 100_000
	}
	if len(c.Tariff.Periods) == 0 {
		c.Tariff.Periods = []Period{{Start: "00:00", End: "24:00", Type: "flat", Electricity: "0", Service: "0"}}
		// it works (the platform gets every quantity), but nobody should
		// find out from a month of free bills
		c.Warnings = append(c.Warnings, "no tariff: bills carry the quantity and 0 fen; add tariff.periods with the station's prices")
	}
	for i := range c.Buses {
		b := &c.Buses[i]
		if b.Baud == 0 {
			b.Baud = driver.DefaultSerial.Baud
		}
		if b.DataBits == 0 {
			b.DataBits = driver.DefaultSerial.DataBits
		}
		if b.Parity == "" {
			b.Parity = driver.DefaultSerial.Parity
		}
		if b.StopBits == 0 {
			b.StopBits = driver.DefaultSerial.StopBits
		}
		if b.LowLatency == "" {
			b.LowLatency = "auto"
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

// checker collects every mistake in a file.
type checker struct{ errs Errors }

func (ck *checker) bad(key, format string, args ...any) {
	ck.errs = append(ck.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// unique checks that a name is given and not given twice in its list.
func (ck *checker) unique(key, name string, seen map[string]bool, where string) {
	switch {
	case name == "":
		ck.bad(key, "required")
	case seen[name]:
		ck.bad(key, "%q used twice%s", name, where)
	default:
		seen[name] = true
	}
}

var nodeIDRe = regexp.MustCompile(`^[0-9A-Za-z]*$`)

func (c *Config) validate() Errors {
	ck := &checker{}
	if c.StationUUID == "" {
		ck.bad("station_uuid", "required: the station number from the P云 console")
	} else if !uuidRe.MatchString(c.StationUUID) {
		ck.bad("station_uuid", "%q: want the station's UUID from the P云 console, such as 49f0cc52-e8c7-41e3-b54d-af666b8cc11a", c.StationUUID)
	}
	c.checkDataDir(ck)
	if len(c.NodeID) > 8 || !nodeIDRe.MatchString(c.NodeID) {
		ck.bad("node_id", "%q: up to 8 letters or digits", c.NodeID)
	}
	if _, err := time.Parse("2006-01-02", c.Clock.MinDate); err != nil {
		ck.bad("clock.min_date", "%q: want YYYY-MM-DD", c.Clock.MinDate)
	}
	switch c.Log.Format {
	case "json", "console", "auto":
	default:
		ck.bad("log.format", "%q: want json, console or auto", c.Log.Format)
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		ck.bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
			ck.bad("listen", "%q: want host:port, e.g. 127.0.0.1:8080", c.Listen)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			// 0: any free port, written to data_dir/listen.addr for the CLI
			ck.bad("listen", "%q: port %q: want 1..65535 (or 0: any free port)", c.Listen, port)
		}
	}
	if c.PollInterval < MinPollInterval {
		ck.bad("poll_interval", "%v: at least %s", c.PollInterval, MinPollInterval)
	}
	if c.PIIDays < 1 || c.PIIDays > c.HistoryDays {
		ck.bad("pii_days", "%d: want 1..history_days (%d)", c.PIIDays, c.HistoryDays)
	}
	if c.BackupInterval < MinBackupInterval {
		ck.bad("backup_interval", "%s: want at least %s (a copy of the whole database each time)", c.BackupInterval, MinBackupInterval)
	}
	if c.HistoryDays < 1 || c.HistoryDays > MaxHistoryDays {
		ck.bad("history_days", "%d: want 1..%d", c.HistoryDays, MaxHistoryDays)
	}
	c.checkPlatform(ck)
	c.checkSession(ck)
	buses := c.checkBuses(ck)
	c.checkPiles(ck, buses)
	c.checkPlates(ck, c.PortKeys())
	return ck.errs
}

func (c *Config) checkDataDir(ck *checker) {
	if c.DataDir == "" {
		ck.bad("data_dir", "required: where sessions and the outbox are kept (e.g. /var/lib/pilebridge)")
		return
	}
	st, err := os.Stat(c.DataDir)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		// created at start: the nearest existing ancestor must be a
		// writable directory
		parent, isDir := nearestExisting(c.DataDir)
		switch {
		case parent != "" && !isDir:
			ck.bad("data_dir", "%s cannot be created: %s is a file", c.DataDir, parent)
		case parent != "" && unix.Access(parent, unix.W_OK) != nil:
			ck.bad("data_dir", "%s does not exist and %s is not writable", c.DataDir, parent)
		}
	case err != nil:
		ck.bad("data_dir", "%s: %v", c.DataDir, err)
	case !st.IsDir():
		ck.bad("data_dir", "%s is a file: want a directory", c.DataDir)
	case st.Mode().Perm()&0o022 != 0:
		// whoever can write there can put another database, or a link, in
		// the daemon's place
		ck.bad("data_dir", "%s is writable by its group or others (mode %04o): chmod 0750 it (the package's unit makes it so)", c.DataDir, st.Mode().Perm())
	case unix.Access(c.DataDir, unix.W_OK) != nil:
		ck.bad("data_dir", "%s is not writable by this user", c.DataDir)
		ck.errs[len(ck.errs)-1].Unwritable = true
	}
	tok := c.ListenTokenFile
	if tok == "" {
		tok = filepath.Join(c.DataDir, "listen_token")
	}
	if st, err := os.Stat(tok); err == nil && st.Mode().Perm()&0o004 != 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("listen_token_file %s can be read by others (mode %04o): whoever reads it can change plates and requeue bills; chmod 0600 it", tok, st.Mode().Perm()))
	}
}

// nearestExisting is the closest existing ancestor of path, and whether it
// is a directory.
func nearestExisting(path string) (string, bool) {
	for dir := filepath.Dir(filepath.Clean(path)); ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(dir); err == nil {
			return dir, st.IsDir()
		}
		if dir == "/" || dir == "." {
			return "", false
		}
	}
}

func (c *Config) checkPlatform(ck *checker) {
	p := c.Platform
	u, err := url.Parse(p.BaseURL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "":
		ck.bad("platform.base_url", "%q: want https://api.4pyun.com, https://dev-api.4pyun.com or a stand-in URL", redactURL(p.BaseURL))
	case u.User != nil:
		ck.bad("platform.base_url", "%q: credentials in the URL are refused (they would be logged and shown); the platform authenticates by app_id and the signature", redactURL(p.BaseURL))
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		ck.bad("platform.base_url", "%q: the platform only over https (records carry VIN, plate and mobile, and the signature); http is for a stand-in on this board's loopback", p.BaseURL)
	}
	if p.AppID == "" {
		ck.bad("platform.app_id", "required")
	}
	if p.AppSecret == "" && p.AppSecretFile == "" {
		// systemd's LoadCredential=app_secret:FILE hands the unit a copy
		// only it can read
		if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, "app_secret")); err == nil {
				p.AppSecretFile = filepath.Join(dir, "app_secret")
				c.Platform.AppSecretFile = p.AppSecretFile
			}
		}
	}
	switch {
	case (p.AppSecret == "") == (p.AppSecretFile == ""):
		ck.bad("platform.app_secret", "give exactly one of app_secret or app_secret_file (or LoadCredential=app_secret:FILE in the unit)")
	case p.AppSecretFile != "":
		b, err := os.ReadFile(p.AppSecretFile)
		if errors.Is(err, os.ErrNotExist) {
			ck.bad("platform.app_secret_file", "%s does not exist (on the board: the app secret alone, owned root:pilebridge, mode 0640)", p.AppSecretFile)
			break
		}
		if err != nil {
			ck.bad("platform.app_secret_file", "%v", err)
			break
		}
		c.Platform.AppSecret = strings.TrimSpace(string(b))
		if c.Platform.AppSecret == "" {
			ck.bad("platform.app_secret_file", "%s is empty", p.AppSecretFile)
		}
		if w := secretModeWarning(p.AppSecretFile, ServiceGroup); w != "" {
			c.Warnings = append(c.Warnings, w)
		}
	}
	for key, d := range map[string]time.Duration{"platform.progress_interval": p.ProgressInterval,
		"platform.device_sync_interval": p.DeviceSyncInterval, "platform.timeout": p.Timeout,
		"platform.retry_base": p.RetryBase, "platform.retry_max": p.RetryMax} {
		if d < 0 {
			ck.bad(key, "%v: must not be negative", d)
		}
	}
	if p.ProgressInterval < time.Second {
		ck.bad("platform.progress_interval", "%v: at least 1s", p.ProgressInterval)
	}
	if p.RetryBase > p.RetryMax {
		ck.bad("platform.retry_base", "%v is more than retry_max %v", p.RetryBase, p.RetryMax)
	}
	if p.OutboxMaxRecords < 1 {
		ck.bad("platform.outbox_max_records", "%d: at least 1", p.OutboxMaxRecords)
	}
	if p.MaxBillAge < MinMaxBillAge {
		ck.bad("platform.max_bill_age", "%v: at least %s", p.MaxBillAge, MinMaxBillAge)
	}
}

func (c *Config) checkSession(ck *checker) {
	s := c.Session
	for key, d := range map[string]time.Duration{"session.start_timeout": s.StartTimeout,
		"session.offline_after": s.OfflineAfter, "session.offline_close": s.OfflineClose} {
		if d < 0 {
			ck.bad(key, "%v: must not be negative", d)
		}
	}
	if s.PersistInterval < 0 || s.PersistInterval > MaxPersistInterval {
		ck.bad("session.persist_interval", "%v: want 0 (every reading) up to %s", s.PersistInterval, MaxPersistInterval)
	}
	if s.HoldPolls < 0 {
		ck.bad("session.hold_polls", "%d: at least 1 (0: the default, 3)", s.HoldPolls)
	}
}

// checkBuses returns the names of the valid buses.
func (c *Config) checkBuses(ck *checker) map[string]bool {
	buses, devices := map[string]bool{}, map[string]string{}
	for i, b := range c.Buses {
		key := fmt.Sprintf("buses[%d]", i)
		ck.unique(key+".name", b.Name, buses, "")
		if dev, err := checkDevice(b.Device); err != nil {
			ck.bad(key+".device", "%q: %v", b.Device, err)
		} else if other, dup := devices[dev]; dup {
			ck.bad(key+".device", "%q is the same line as %s: one bus per line", b.Device, other)
		} else {
			devices[dev] = key
		}
		switch strings.ToUpper(b.Parity) {
		case "N", "E", "O":
		default:
			ck.bad(key+".parity", "%q: want N, E or O", b.Parity)
		}
		if b.StopBits != 1 && b.StopBits != 2 {
			ck.bad(key+".stop_bits", "%d: want 1 or 2", b.StopBits)
		}
		if b.DataBits != 7 && b.DataBits != 8 {
			ck.bad(key+".data_bits", "%d: want 8 (or 7)", b.DataBits)
		}
		if b.Baud < driver.MinBaud || b.Baud > driver.MaxBaud {
			ck.bad(key+".baud", "%d: want %d..%d", b.Baud, driver.MinBaud, driver.MaxBaud)
		}
		if b.Timeout < MinBusTimeout || b.Timeout > MaxBusTimeout {
			ck.bad(key+".timeout", "%v: want %s..%s", b.Timeout, MinBusTimeout, MaxBusTimeout)
		}
		if b.Retries < 0 || b.Retries > driver.MaxRetries {
			ck.bad(key+".retries", "%d: want 0..%d", b.Retries, driver.MaxRetries)
		}
		if b.SwitchGap < 0 || b.SwitchGap > time.Second {
			ck.bad(key+".switch_gap", "%v: want 0..1s", b.SwitchGap)
		}
		if r := b.RS485; r != nil {
			k := key + ".rs485"
			if strings.Contains(b.Device, "://") {
				ck.bad(k, "applies to serial devices, not to %s", b.Device)
			}
			if r.Enabled && (r.RTSOnSend == nil || *r.RTSOnSend) == r.RTSAfterSend {
				ck.bad(k+".rts_on_send", "RTS high on send, or after send: one of the two")
			}
			for sub, d := range map[string]time.Duration{"delay_rts_before_send": r.DelayRTSBeforeSend, "delay_rts_after_send": r.DelayRTSAfterSend} {
				if d < 0 || d > time.Second || d%time.Millisecond != 0 {
					ck.bad(k+"."+sub, "%v: want whole milliseconds, 0..1s", d)
				}
			}
		}
		switch b.LowLatency {
		case "auto", "off":
		case "on":
			if strings.Contains(b.Device, "://") {
				ck.bad(key+".low_latency", "on: applies to serial devices, not to %s", b.Device)
			}
		default:
			ck.bad(key+".low_latency", "%q: want auto, on or off", b.LowLatency)
		}
	}
	return buses
}

// checkDevice validates a bus device and returns what identifies its line:
// the resolved path of a serial device (so a /dev/serial/by-id link and its
// target are one line), or the host:port of a gateway.
func checkDevice(dev string) (string, error) {
	if dev == "" {
		return "", errors.New("required: a serial path (/dev/ttyUSB0, /dev/serial/by-id/...) or tcp://host:port or rtuovertcp://host:port")
	}
	if scheme, rest, ok := strings.Cut(dev, "://"); ok {
		if scheme != "tcp" && scheme != "rtuovertcp" {
			return "", fmt.Errorf("unknown scheme %q: want a serial path, tcp://host:port or rtuovertcp://host:port", scheme)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" {
			return "", errors.New("want host:port after the scheme, e.g. tcp://192.168.1.50:502")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q: want 1..65535", port)
		}
		return strings.ToLower(rest), nil
	}
	if !strings.HasPrefix(dev, "/") {
		return "", errors.New("want an absolute serial path (/dev/ttyUSB0, /dev/serial/by-id/...) or tcp://host:port")
	}
	if real, err := filepath.EvalSymlinks(dev); err == nil {
		return real, nil
	}
	return filepath.Clean(dev), nil // not present here (a board's path): compared as written
}

// isLoopback: localhost or a loopback address, where plain http stays on
// the board.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a password in a URL written in a message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// inlineSecretWarning warns when the app secret is written in a config file
// that others on the board can read.
func inlineSecretWarning(path string, c *Config) string {
	if c.Platform.AppSecret == "" || c.Platform.AppSecretFile != "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o044 == 0 {
		return ""
	}
	return fmt.Sprintf("platform.app_secret is written in %s, which has mode %04o: others on the board can read the app secret; move it to app_secret_file (root:pilebridge 0640) or chmod 600 the config", path, st.Mode().Perm())
}

// ServiceGroup is the group the packaged unit runs in (Group=): the app
// secret file's group, readable by the service and nobody else.
const ServiceGroup = "pilebridge"

// secretModeWarning warns when the secret file can be read by others, or by
// a group that is neither the service's (group, when it exists: root
// running `check` judges the file as the service would) nor this process's.
func secretModeWarning(path, group string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	mode := st.Mode().Perm()
	if mode&0o004 != 0 {
		return fmt.Sprintf("platform.app_secret_file %s has mode %04o: anyone on the board can read the app secret; chmod 640 and chown root:%s", path, mode, group)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if mode&0o040 == 0 || !ok {
		return ""
	}
	gid := int(sys.Gid)
	if g, err := user.LookupGroup(group); err == nil && g.Gid == strconv.Itoa(gid) {
		return ""
	}
	if gid == os.Getegid() {
		return ""
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return ""
		}
	}
	name := strconv.Itoa(gid)
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	return fmt.Sprintf("platform.app_secret_file %s has mode %04o and group %s, which the service does not run in: that group can read the app secret; chown root:%s", path, mode, name, group)
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

func (c *Config) checkPiles(ck *checker, buses map[string]bool) {
	devices, slaves := map[string]bool{}, map[string]string{}
	for i, pl := range c.Piles {
		key := fmt.Sprintf("piles[%d]", i)
		ck.unique(key+".device_no", pl.DeviceNo, devices, "")
		if pl.DeviceType != 0 && pl.DeviceType != 1 {
			ck.bad(key+".device_type", "%d: want 0 (car) or 1 (two-wheeler)", pl.DeviceType)
		}
		if pl.EnergyCode != "CN_AC" && pl.EnergyCode != "CN_DC" {
			ck.bad(key+".energy_code", "%q: want CN_AC or CN_DC", pl.EnergyCode)
		}
		if !buses[pl.Bus] {
			ck.bad(key+".bus", "%q is not a configured bus", pl.Bus)
		}
		if pl.RatedPowerW < 0 || pl.RatedPowerW > MaxRatedPowerW {
			ck.bad(key+".rated_power_w", "%d: want 0 (no plausibility check) up to %d W", pl.RatedPowerW, MaxRatedPowerW)
		}
		if len(pl.Ports) == 0 {
			ck.bad(key+".ports", "at least one port")
		}
		ports := map[string]bool{}
		for j, pt := range pl.Ports {
			pk := fmt.Sprintf("%s.ports[%d]", key, j)
			ck.unique(pk+".port_no", pt.PortNo, ports, " on this pile")
			if pt.Slave < driver.MinSlave || pt.Slave > driver.MaxSlave {
				ck.bad(pk+".slave", "%d: want %d..%d", pt.Slave, driver.MinSlave, driver.MaxSlave)
			} else {
				sk := fmt.Sprintf("%s/%d", pl.Bus, pt.Slave)
				if other, dup := slaves[sk]; dup {
					ck.bad(pk+".slave", "slave %d on bus %s is also %s", pt.Slave, pl.Bus, other)
				}
				slaves[sk] = pk
			}
			if pt.Profile == "" {
				ck.bad(pk+".profile", "required (see `pilebridge profiles`)")
			}
			if pt.PT < 1 || pt.CT < 1 || pt.PT > 10000 || pt.CT > 10000 {
				ck.bad(pk+".pt", "pt and ct must be 1..10000 (a ratio such as 400/5 is ct: 80)")
			}
			if pt.PollInterval < MinPollInterval {
				ck.bad(pk+".poll_interval", "%v: at least %s", pt.PollInterval, MinPollInterval)
			}
			if pt.Timeout != 0 && (pt.Timeout < MinBusTimeout || pt.Timeout > MaxBusTimeout) {
				ck.bad(pk+".timeout", "%v: want %s..%s (0: the bus's)", pt.Timeout, MinBusTimeout, MaxBusTimeout)
			}
			if pt.Retries != nil && (*pt.Retries < 0 || *pt.Retries > driver.MaxRetries) {
				ck.bad(pk+".retries", "%d: want 0..%d", *pt.Retries, driver.MaxRetries)
			}
			m := pt.MeterOnly
			if m.StartPowerW < 0 || m.StopPowerW < 0 {
				ck.bad(pk+".meter_only", "powers must not be negative")
			} else if m.StartPowerW <= m.StopPowerW {
				ck.bad(pk+".meter_only.start_power_w", "%d: must be above stop_power_w %d, or a session would start and stop on the same power", m.StartPowerW, m.StopPowerW)
			}
			if m.StartFor < 0 || m.StopFor < 0 {
				ck.bad(pk+".meter_only", "start_for and stop_for must not be negative")
			}
		}
	}
}

// MinDate is clock.min_date parsed.
func (c *Config) MinDate() time.Time {
	t, _ := time.Parse("2006-01-02", c.Clock.MinDate)
	return t
}
