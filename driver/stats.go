package driver

import (
	"errors"
	"time"
)

// SlaveStats counts what happened on the wire for one slave.
type SlaveStats struct {
	Exchanges   uint64        `json:"exchanges"`
	OK          uint64        `json:"ok"`
	Timeouts    uint64        `json:"timeouts"`
	CRCErrors   uint64        `json:"crc_errors"`
	FrameErrors uint64        `json:"frame_errors"` // other than CRC: wrong id, function, length
	Exceptions  uint64        `json:"exceptions"`
	LineErrors  uint64        `json:"line_errors"`
	Skipped     uint64        `json:"skipped"` // failed fast while in backoff
	LastGood    time.Time     `json:"last_good"`
	LastLatency time.Duration `json:"last_latency_ns"`
	MaxLatency  time.Duration `json:"max_latency_ns"`
}

// SuccessPercent is the share of exchanges on the wire that were answered
// well, to 0.1 %; ok is false before the first exchange. Reads skipped while
// a dead slave backs off are not exchanges (they never reached the wire),
// so they count neither way.
func (s SlaveStats) SuccessPercent() (pct float64, ok bool) {
	if s.Exchanges == 0 {
		return 0, false
	}
	return float64(int(1000*float64(s.OK)/float64(s.Exchanges))) / 10, true
}

func (b *Bus) count(slave uint8, f func(*SlaveStats)) {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	s := b.stats[slave]
	if s == nil {
		s = &SlaveStats{}
		b.stats[slave] = s
	}
	f(s)
}

func (b *Bus) record(slave uint8, lat time.Duration, err error) {
	b.count(slave, func(s *SlaveStats) {
		s.Exchanges++
		var fe *FrameError
		var ee *ExceptionError
		switch {
		case err == nil:
			s.OK++
			s.LastGood = time.Now()
			s.LastLatency = lat
			s.MaxLatency = max(s.MaxLatency, lat)
		case errors.Is(err, ErrTimeout):
			s.Timeouts++
		case errors.As(err, &fe) && fe.Kind == FrameCRC:
			s.CRCErrors++
		case errors.As(err, &fe):
			s.FrameErrors++
		case errors.As(err, &ee):
			s.Exceptions++
		default:
			s.LineErrors++
		}
	})
}

// LineStats counts what happened on the line that belongs to no slave.
type LineStats struct {
	// StrayFrames are whole, valid frames from a slave other than the one
	// addressed (a late reply to an earlier exchange): skipped, and not
	// counted against the slave that was addressed.
	StrayFrames uint64 `json:"stray_frames"`
	// Babbles counts the times the line would not fall silent (bytes kept
	// coming past a late reply's window): the line was closed and reopened
	// after a backoff. LastBabble is the latest; zero when never.
	Babbles    uint64    `json:"babbles"`
	LastBabble time.Time `json:"last_babble"`
	// Reopened counts links lost under a working line (a converter that
	// closes the connection, a TCP reset) and reopened at once, the
	// exchange sent again and answered.
	Reopened uint64 `json:"reopened"`
	// Busy is the time spent in exchanges since the bus started;
	// BusyRatio the share of the last minute spent so (0..1): a line near
	// 1 cannot poll its ports as often as configured.
	Busy      time.Duration `json:"busy_ns"`
	BusyRatio float64       `json:"busy_ratio"`
}

// LineStats returns the line's counters.
func (b *Bus) LineStats() LineStats {
	st := LineStats{StrayFrames: b.tr.strays.Load(), Babbles: b.tr.babbles.Load(), Reopened: b.tr.reopened.Load()}
	st.Busy, st.BusyRatio = b.load.load(time.Now())
	if ns := b.tr.lastBabble.Load(); ns > 0 {
		st.LastBabble = time.Unix(0, ns)
	}
	return st
}

// Stats returns a copy of every slave's counters.
func (b *Bus) Stats() map[uint8]SlaveStats {
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	out := make(map[uint8]SlaveStats, len(b.stats))
	for id, s := range b.stats {
		out[id] = *s
	}
	return out
}
