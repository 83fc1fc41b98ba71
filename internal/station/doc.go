// Package station is the daemon: it wires the buses, session machines,
// store, outbox and sender from a loaded config, runs them, and serves the
// local API (status page, JSON, metrics, health) and systemd's watchdog.
// cmd/pilebridge only parses flags and calls it; a test can build and run
// a station in-process with the real bus, store and HTTP.
package station
