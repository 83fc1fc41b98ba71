// Package limits holds the bounds that more than one package enforces, so
// each is stated once: the config refuses a value past them, the session
// engine relies on them, the probe judges readings by them.
package limits

// MaxPowerW is the largest power a charging pile or meter can plausibly
// report or be rated at: 2 MW, more than any pile, and small enough that
// the energy limits derived from it never overflow an int64 of mWh.
const MaxPowerW = 2_000_000
