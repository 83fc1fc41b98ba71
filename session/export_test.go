package session

import (
	"time"

	"github.com/rs/zerolog"
)

// FilledPortConfig fills what a test leaves zero with the values the daemon's
// config gives by default (internal/config), so a test states only what it
// is about; NewMachine itself takes no defaults.
func FilledPortConfig(cfg PortConfig) PortConfig {
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Minute
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.OfflineAfter == 0 {
		cfg.OfflineAfter = 30 * time.Second
	}
	if cfg.OfflineClose == 0 {
		cfg.OfflineClose = 6 * time.Hour
	}
	if cfg.HoldPolls == 0 {
		cfg.HoldPolls = 3
	}
	return cfg
}

func mustMachine(t interface {
	Helper()
	Fatal(...any)
}, cfg PortConfig, tr *Tariff, orders func(time.Time) string) *Machine {
	t.Helper()
	m, err := NewMachine(FilledPortConfig(cfg), tr, orders, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
