package simulator

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"pilebridge/driver"
)

// FaultKind is a way a slave misbehaves.
type FaultKind string

const (
	FaultNoAnswer  FaultKind = "noanswer"  // silence
	FaultLate      FaultKind = "late"      // a valid reply after Delay
	FaultBadCRC    FaultKind = "badcrc"    // reply with a corrupted CRC
	FaultTruncated FaultKind = "truncated" // only the first half of the reply
	FaultWrongID   FaultKind = "wrongid"   // reply from another slave id
	FaultGarbage   FaultKind = "garbage"   // valid reply followed by noise
	FaultException FaultKind = "exception" // exception Code
	FaultHangup    FaultKind = "hangup"    // the line drops (pty hang-up, TCP close)
)

// Fault is injected into a slave's next Count replies (0: until cleared).
type Fault struct {
	Kind  FaultKind
	Count int
	Delay time.Duration
	Code  byte
}

// RegisterSource answers register reads; a Bank is one. A Pile is another
// that logs what it served (Pile.LogReads).
type RegisterSource interface {
	Get(fc uint8, addr, n uint16) ([]uint16, bool)
}

// Slave is one simulated device on the line.
type Slave struct {
	ID   uint8
	Bank *Bank
	// Source, if set, answers reads instead of Bank (writes still go to Bank).
	Source RegisterSource

	mu    sync.Mutex
	fault *Fault
	Reads uint64 // requests answered or not, for tests
}

// Inject sets the slave's fault, replacing any earlier one.
func (s *Slave) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = &f
}

// Clear removes any fault.
func (s *Slave) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = nil
}

// ReadCount is how many requests the slave has had, answered or not.
func (s *Slave) ReadCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Reads
}

func (s *Slave) takeFault() *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Reads++
	f := s.fault
	if f == nil {
		return nil
	}
	out := *f
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			s.fault = nil
		}
	}
	return &out
}

// Server answers Modbus requests for its slaves.
type Server struct {
	// Baud paces replies like a real line: the request's and the reply's
	// bytes take 11/Baud s each, plus a 3.5-character turnaround. 0: no pacing.
	Baud int
	Log  zerolog.Logger

	mu     sync.Mutex
	slaves map[uint8]*Slave
	hangup func()     // set by the line the server is attached to
	wmu    sync.Mutex // one frame at a time on the line: a late reply is written whole
}

// NewServer returns a server with no slaves.
func NewServer(log zerolog.Logger) *Server {
	return &Server{slaves: map[uint8]*Slave{}, Log: log}
}

// AddSlave creates a slave with an empty bank.
func (s *Server) AddSlave(id uint8) *Slave {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &Slave{ID: id, Bank: NewBank()}
	s.slaves[id] = sl
	return sl
}

// Slave returns the slave with that id, or nil.
func (s *Server) Slave(id uint8) *Slave {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slaves[id]
}

// answer builds the reply PDU (function code first) to a request PDU.
func (s *Server) answer(sl *Slave, pdu []byte, f *Fault) []byte {
	fc := pdu[0]
	exc := func(code byte) []byte { return []byte{fc | 0x80, code} }
	if f != nil && f.Kind == FaultException {
		return exc(f.Code)
	}
	switch fc {
	case 3, 4:
		if len(pdu) != 5 {
			return exc(3)
		}
		addr, n := binary.BigEndian.Uint16(pdu[1:]), binary.BigEndian.Uint16(pdu[3:])
		if n < 1 || n > 125 {
			return exc(3)
		}
		var src RegisterSource = sl.Bank
		if sl.Source != nil {
			src = sl.Source
		}
		words, ok := src.Get(fc, addr, n)
		if !ok {
			return exc(2)
		}
		out := make([]byte, 2+2*len(words))
		out[0], out[1] = fc, byte(2*len(words))
		for i, w := range words {
			binary.BigEndian.PutUint16(out[2+2*i:], w)
		}
		return out
	case 6:
		if len(pdu) != 5 {
			return exc(3)
		}
		sl.Bank.Set(3, binary.BigEndian.Uint16(pdu[1:]), []uint16{binary.BigEndian.Uint16(pdu[3:])})
		return append([]byte(nil), pdu...)
	case 16:
		if len(pdu) < 6 {
			return exc(3)
		}
		addr, n := binary.BigEndian.Uint16(pdu[1:]), binary.BigEndian.Uint16(pdu[3:])
		if int(pdu[5]) != 2*int(n) || len(pdu) != 6+2*int(n) {
			return exc(3)
		}
		words := make([]uint16, n)
		for i := range words {
			words[i] = binary.BigEndian.Uint16(pdu[6+2*i:])
		}
		sl.Bank.Set(3, addr, words)
		return []byte{16, pdu[1], pdu[2], pdu[3], pdu[4]}
	default:
		return exc(1)
	}
}

// charTime is one 11-bit character on the paced line.
func (s *Server) charTime() time.Duration {
	if s.Baud <= 0 {
		return 0
	}
	return time.Duration(11 * float64(time.Second) / float64(s.Baud))
}

// pace waits as long as a real line would take to carry the request and the
// reply, with the slave's 3.5-character turnaround.
func (s *Server) pace(reqLen, respLen int) {
	ct := s.charTime()
	if ct == 0 {
		return
	}
	silence := time.Duration(3.5 * float64(ct))
	if s.Baud > 19200 {
		silence = 1750 * time.Microsecond
	}
	preciseSleep(time.Duration(reqLen+respLen)*ct + silence)
}

// preciseSleep blocks the thread in nanosleep: time.Sleep overshoots short
// waits by up to a millisecond, which would make a fast line look slow.
func preciseSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		if err := unix.Nanosleep(&ts, &ts); err != unix.EINTR {
			return
		}
	}
}

// rtuRequestLen says how long the RTU request starting at buf is, or 0 when
// more bytes are needed to tell.
func rtuRequestLen(buf []byte) int {
	if len(buf) < 2 {
		return 0
	}
	switch buf[1] {
	case 15, 16:
		if len(buf) < 7 {
			return 0
		}
		return 9 + int(buf[6])
	default:
		return 8
	}
}

// ServeRTU answers RTU frames read from rw until it fails (closed or hung up).
func (s *Server) ServeRTU(rw io.ReadWriter) error {
	buf := make([]byte, 0, 512)
	tmp := make([]byte, 256)
	for {
		n, err := rw.Read(tmp)
		if err != nil {
			return err
		}
		buf = append(buf, tmp[:n]...)
		for {
			need := rtuRequestLen(buf)
			if need == 0 || len(buf) < need {
				break
			}
			frame := buf[:need]
			crc := uint16(frame[need-2]) | uint16(frame[need-1])<<8
			if driver.CRC16(frame[:need-2]) != crc || need > 256 {
				buf = buf[:0] // a bad CRC gets silence; resynchronise on the next frame
				break
			}
			req := append([]byte(nil), frame...)
			buf = append(buf[:0], buf[need:]...)
			if err := s.handleRTU(rw, req); err != nil {
				return err
			}
		}
		if len(buf) > 300 {
			buf = buf[:0]
		}
	}
}

func (s *Server) handleRTU(w io.Writer, req []byte) error {
	sl := s.Slave(req[0])
	if sl == nil {
		return nil // not ours: a real slave stays silent
	}
	f := sl.takeFault()
	if f != nil {
		switch f.Kind {
		case FaultNoAnswer:
			return nil
		case FaultHangup:
			s.mu.Lock()
			h := s.hangup
			s.mu.Unlock()
			if h != nil {
				h()
			}
			return nil
		}
	}
	pdu := s.answer(sl, req[1:len(req)-2], f)
	id := req[0]
	if f != nil && f.Kind == FaultWrongID {
		id++
	}
	resp := driver.AppendCRC(append([]byte{id}, pdu...))
	s.pace(len(req), len(resp))
	if f != nil {
		switch f.Kind {
		case FaultLate:
			// the slave answers after Delay while the line goes on: the master
			// has moved on, and the reply lands in another exchange
			time.AfterFunc(f.Delay, func() {
				s.wmu.Lock()
				defer s.wmu.Unlock()
				_, _ = w.Write(resp)
			})
			return nil
		case FaultBadCRC:
			resp[len(resp)-1] ^= 0x5A
		case FaultTruncated:
			resp = resp[:len(resp)/2]
		case FaultGarbage:
			resp = append(resp, 0xDE, 0xAD, 0xBE, 0xEF)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := w.Write(resp)
	return err
}

// ServeTCP accepts connections on l and answers each in its framing: MBAP
// (Modbus TCP) or raw RTU frames (an RS-485-to-Ethernet converter).
func (s *Server) ServeTCP(l net.Listener, rtu bool) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			s.mu.Lock()
			s.hangup = func() { _ = c.Close() }
			s.mu.Unlock()
			var err error
			if rtu {
				err = s.ServeRTU(c)
			} else {
				err = s.serveMBAP(c)
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.Log.Debug().Err(err).Msg("tcp client gone")
			}
		}()
	}
}

func (s *Server) serveMBAP(c net.Conn) error {
	hdr := make([]byte, 7)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return err
		}
		l := int(binary.BigEndian.Uint16(hdr[4:]))
		if l < 2 || l > 254 {
			return errors.New("bad MBAP length")
		}
		pdu := make([]byte, l-1)
		if _, err := io.ReadFull(c, pdu); err != nil {
			return err
		}
		sl := s.Slave(hdr[6])
		if sl == nil {
			// a gateway answers for an absent target with exception 0B
			if err := writeMBAP(c, hdr, []byte{pdu[0] | 0x80, 0x0B}); err != nil {
				return err
			}
			continue
		}
		f := sl.takeFault()
		if f != nil && f.Kind == FaultNoAnswer {
			continue
		}
		if f != nil && f.Kind == FaultHangup {
			return c.Close()
		}
		resp := s.answer(sl, pdu, f)
		if f != nil && f.Kind == FaultLate {
			time.Sleep(f.Delay)
		}
		if err := writeMBAP(c, hdr, resp); err != nil {
			return err
		}
	}
}

func writeMBAP(w io.Writer, reqHdr, pdu []byte) error {
	out := make([]byte, 7+len(pdu))
	copy(out, reqHdr[:4])
	binary.BigEndian.PutUint16(out[4:], uint16(len(pdu)+1))
	out[6] = reqHdr[6]
	copy(out[7:], pdu)
	_, err := w.Write(out)
	return err
}
