package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"pilebridge/driver"
	"regexp"
	"strconv"
	"strings"
	"time"
)

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
	if c.DataDir == "" {
		ck.bad("data_dir", "required: where sessions and the outbox are kept (e.g. /var/lib/pilebridge)")
	} else if !filepath.IsAbs(c.DataDir) {
		ck.bad("data_dir", "%q: want an absolute path (the unit's working directory is /)", c.DataDir)
	}
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
	if p.AppSecret != "" && p.AppSecretFile != "" {
		ck.bad("platform.app_secret", "give exactly one of app_secret or app_secret_file (or LoadCredential=app_secret:FILE in the unit)")
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

// checkDevice validates a bus device as written and returns what
// identifies its line: the clean path of a serial device, or the host:port
// of a gateway.
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
	return filepath.Clean(dev), nil // a link and its target are found one line by Resolve
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
