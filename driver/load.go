package driver

import (
	"sync"
	"time"
)

// loadMeter measures how much of the wall time the line spends in
// exchanges: the request, the silence, the slave's turnaround and its
// reply, as the bus goroutine lives them.
type loadMeter struct {
	mu    sync.Mutex
	total time.Duration
	marks [loadMarks]loadMark // the cumulative total, at most one mark a second
	n     int                 // marks kept
	head  int                 // index of the newest
}

type loadMark struct {
	at    time.Time
	total time.Duration
}

// loadMarks covers a minute at one mark a second, with room to spare.
const loadMarks = 96

// LoadWindow is the span BusyRatio is measured over.
const LoadWindow = time.Minute

func (m *loadMeter) add(start, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total += end.Sub(start)
	if m.n > 0 && end.Sub(m.marks[m.head].at) < time.Second {
		m.marks[m.head].total = m.total
		return
	}
	if m.n == 0 {
		// the line's first exchange: count from its start
		m.marks[0], m.n, m.head = loadMark{at: start}, 1, 0
	}
	m.head = (m.head + 1) % loadMarks
	m.marks[m.head] = loadMark{at: end, total: m.total}
	m.n = min(m.n+1, loadMarks)
}

// load is the total busy time, and the share of the last LoadWindow (or of
// the time since the first exchange, if shorter) spent busy, 0..1.
func (m *loadMeter) load(now time.Time) (time.Duration, float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == 0 {
		return 0, 0
	}
	// the oldest mark inside the window; with none, the window is idle
	from := loadMark{at: now.Add(-LoadWindow), total: m.total}
	for i := 0; i < m.n; i++ {
		mk := m.marks[(m.head-i+loadMarks)%loadMarks]
		if now.Sub(mk.at) > LoadWindow {
			break
		}
		from = mk
	}
	span := now.Sub(from.at)
	if span <= 0 {
		return m.total, 0
	}
	return m.total, min(1, float64(m.total-from.total)/float64(span))
}
