package config

import (
	"pilebridge/driver"
	"time"
)

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
