package station

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The local server faces the car park's LAN (cameras push plates to it):
// anyone there can open connections. Each costs a goroutine and buffers, so
// they are capped, per source address and in all; what is over the cap is
// closed at once. With the server's timeouts (serve) no connection lives
// long, so a flood holds at most these many at a time.
const (
	maxConnsPerAddr = 64
	maxConns        = 512
)

// Timeouts and sizes of the local server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second // a whole request, body included
	writeTimeout      = 60 * time.Second // the longest answer: a page of the ledger, a database backup
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// capListener caps the connections it hands out.
type capListener struct {
	net.Listener
	perAddr, total int

	mu      sync.Mutex
	byAddr  map[string]int
	open    int
	refused atomic.Uint64
}

func newCapListener(l net.Listener, perAddr, total int) *capListener {
	return &capListener{Listener: l, perAddr: perAddr, total: total, byAddr: map[string]int{}}
}

// Accept returns the next connection within the caps; those over them are
// closed unanswered.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		// the board itself (the CLI, a technician's curl, the watchdog's
		// view) is not crowded out by the LAN: loopback has its own
		// per-address budget outside the total
		local := host == "127.0.0.1" || host == "::1"
		l.mu.Lock()
		over := (!local && l.open >= l.total) || l.byAddr[host] >= l.perAddr
		if !over {
			if !local {
				l.open++
			}
			l.byAddr[host]++
		}
		l.mu.Unlock()
		if over {
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		return &cappedConn{Conn: c, l: l, host: host}, nil
	}
}

func (l *capListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if host != "127.0.0.1" && host != "::1" {
		l.open--
	}
	if l.byAddr[host]--; l.byAddr[host] <= 0 {
		delete(l.byAddr, host)
	}
}

// Refused counts the connections closed for being over a cap.
func (l *capListener) Refused() uint64 { return l.refused.Load() }

type cappedConn struct {
	net.Conn
	l    *capListener
	host string
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}
