package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/backoff"
	"pilebridge/internal/faillog"
)

type framing int

const (
	framingRTU  framing = iota // RTU frames on a serial line or a raw TCP socket
	framingMBAP                // Modbus TCP
)

// transport is the modbus.Transporter under goburrow's client. Only the bus
// goroutine calls it, so it needs no lock: the bus is the lock.
type transport struct {
	open    func() (link, error)
	framing framing
	silence time.Duration // 3.5 characters between frames
	log     zerolog.Logger

	link     link
	lastIO   time.Time
	timeout  time.Duration // set by the bus before each exchange
	limit    time.Time     // the caller's own deadline, if any
	deadline time.Time     // of the exchange under way

	openErr    error
	nextOpen   time.Time
	openBackof time.Duration // grows with each failed open or lost line; reset once the line has been good for stableAfter
	down       *faillog.Failure
	drops      *faillog.Failure // connections lost under a working line and reopened at once
	lost       error            // the link was lost in the exchange under way (drop)
	served     bool             // the open link has carried a good exchange
	goodSince  time.Time        // first good exchange since the line was last lost; zero: not good
	reopened   atomic.Uint64    // links lost and reopened at once for the same exchange (read by LineStats)
	buf        [260]byte

	// After a timeout the slave may still answer. Until quarantineUntil the
	// line is drained before that same slave is addressed again, so its late
	// reply is never taken for the next one's. Another slave is addressed
	// after the usual silence: the late reply, if it lands in that exchange,
	// has the wrong address and is skipped as a stray frame.
	quarantineUntil time.Time
	quarantineSlave byte
	lateWindow      time.Duration // set by the bus per exchange
	strays          atomic.Uint64 // stray frames skipped (read by LineStats)
	babbles         atomic.Uint64 // times the line would not fall silent (read by LineStats)
	junkRounds      int           // exchanges in a row that found stray bytes waiting, with no good one between
	// clean: the last Modbus TCP exchange on this link read its reply and
	// nothing after it. Its socket then holds nothing stale and the next
	// request skips the flush (a syscall on every poll of every port); a
	// reply that comes twice is still told apart by its transaction id.
	clean      bool
	lastBabble atomic.Int64 // unix ns of the last; 0 never
}

const (
	// A line that fails is reopened after a backoff that doubles from
	// minReopen to maxReopen: a gateway that is down is dialled at most every
	// 2 s (a SYN, or an open(2) of a missing adapter: nothing to save), and a
	// converter that flaps is polled again within 2 s of its return.
	minReopen = 200 * time.Millisecond
	maxReopen = 2 * time.Second
	// stableAfter: the backoff and the failure log start over only after the
	// line has carried exchanges this long without being lost. A converter
	// that drops the connection after every reply, or flaps, stays one
	// failure that lasts (a handful of lines in ten minutes), not a "down"
	// and a "recovered" line per exchange.
	stableAfter = time.Minute
	// maxDrain bounds what is read while waiting for a late reply or for
	// silence: a reply is at most 256 bytes, so more than two of them is
	// not a late reply but a line that babbles.
	maxDrain = 512
	// babbleRounds: this many exchanges in a row finding bytes waiting
	// before the request, and none answered well, is a babble (a late reply
	// leaves bytes once, not before every request).
	babbleRounds = 4
)

// errLinkLost: the connection or port closed under a working line.
var errLinkLost = errors.New("the link closed under a working line")

// errBabble: bytes kept coming where the line should have fallen silent.
var errBabble = errors.New("the line does not fall silent: a device or gateway keeps sending")

// silenceFor is 3.5 character times of 11 bits, fixed at 1.75 ms above 19200
// baud as the Modbus serial line spec says.
func silenceFor(baud int) time.Duration {
	if baud <= 0 || baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * 11 * float64(time.Second) / float64(baud))
}

// ensureOpen opens the line when it is closed, at most once per backoff step,
// and logs only when the line changes state.
func (t *transport) ensureOpen() error {
	if t.link != nil {
		return nil
	}
	now := time.Now()
	if now.Before(t.nextOpen) {
		return fmt.Errorf("%w: %v", ErrLineDown, t.openErr)
	}
	l, err := t.open()
	if err != nil {
		t.failed(now, fmt.Errorf("open: %w", err))
		return fmt.Errorf("%w: %w", ErrLineDown, err)
	}
	t.link, t.openErr, t.served = l, nil, false
	return nil
}

// failed notes that the line failed at now (an open refused, the line lost,
// a babble): the next open waits a backoff that doubles up to maxReopen. A
// gateway that accepts and then fails is not reopened in a tight loop: only
// a good exchange (ok) resets the backoff, not a connect.
func (t *transport) failed(now time.Time, err error) {
	if t.down == nil {
		t.down = faillog.New(t.log, "line down, will reopen", 0)
	}
	t.openErr = err
	t.openBackof = backoff.Policy{Base: minReopen, Max: maxReopen}.Next(t.openBackof)
	t.nextOpen = now.Add(t.openBackof)
	t.down.Fail(now, kindOf(err), func(e *zerolog.Event) {
		e.AnErr("cause", err).Int64("backoff_ms", t.openBackof.Milliseconds())
	})
}

// kindOf is what the line-down log judges a change of failure by: a link
// closed under it says EOF, reset or broken pipe by turns, which are one
// failure; any other error is its own.
func kindOf(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNABORTED):
		return errLinkLost
	}
	return err
}

// ok notes a good exchange. Once the line has carried exchanges for
// stableAfter without being lost, its backoff and failure logs start over.
func (t *transport) ok(now time.Time) {
	t.junkRounds, t.served = 0, true
	if t.goodSince.IsZero() {
		t.goodSince = now
	}
	if now.Sub(t.goodSince) < stableAfter {
		return
	}
	t.openBackof = 0
	if t.down != nil {
		t.down.OK(now)
	}
	if t.drops != nil {
		t.drops.OK(now)
	}
}

// drop closes the line after an I/O error so the exchange can reopen it
// (an unplugged USB adapter, a hung-up tty or a closed connection never
// recovers in place). Send decides whether that is a failure (lost).
func (t *transport) drop(err error) {
	if t.link == nil {
		return
	}
	_ = t.link.Close()
	t.link, t.goodSince, t.clean = nil, time.Time{}, false
	if t.lost == nil {
		t.lost = err
	}
}

// Send implements modbus.Transporter: one request, one validated reply. A
// link that had carried good exchanges and is lost under this one (a
// converter that closes the connection after each reply, a TCP reset) is
// reopened at once and the request sent again, once: reads are idempotent,
// and without it the slave polled after a drop always met the closed
// socket. A link lost again, or one that never carried an exchange, is a
// failure: backoff, and the line-down log.
func (t *transport) Send(req []byte) ([]byte, error) {
	served := t.link != nil && t.served
	resp, err := t.send(req)
	lost := t.lost
	t.lost = nil
	if lost == nil {
		return resp, err
	}
	if served && !errors.Is(lost, errBabble) {
		resp, err = t.send(req)
		again := t.lost
		t.lost = nil
		if again == nil && t.link == nil {
			return resp, err // the reopen itself failed: ensureOpen has said so (backoff, line-down log)
		}
		if again == nil {
			t.reopened.Add(1)
			if t.drops == nil {
				t.drops = faillog.New(t.log, "connection lost under a working line: reopened and the exchange sent again", 0)
			}
			// one failure whatever the socket said (EOF, a reset, a broken
			// pipe: they alternate on such a line, and each change of cause
			// would be a line of its own)
			t.drops.Fail(time.Now(), errLinkLost, func(e *zerolog.Event) { e.AnErr("cause", lost) })
			return resp, err
		}
		lost = again
	}
	t.failed(time.Now(), lost)
	return resp, err
}

// babble marks the line as babbling and closes it: a gateway that streams
// is reconnected after a backoff, a serial line is left alone for as long
// (either way the bus is not held, and costs little while it lasts).
func (t *transport) babble() {
	t.junkRounds = 0
	t.babbles.Add(1)
	t.lastBabble.Store(time.Now().UnixNano())
	t.lost = nil // the babble is the failure, not an I/O error before it
	t.drop(errBabble)
}

// Close releases the line.
func (t *transport) Close() error {
	if t.link == nil {
		return nil
	}
	err := t.link.Close()
	t.link = nil
	return err
}

// send is one request and one validated reply, all within t.deadline.
func (t *transport) send(req []byte) ([]byte, error) {
	if err := t.ensureOpen(); err != nil {
		return nil, err
	}
	if t.framing == framingMBAP {
		t.quarantineUntil = time.Time{} // transaction ids tell late replies apart
	}
	if !t.quarantineUntil.IsZero() && time.Now().After(t.quarantineUntil) {
		t.quarantineUntil = time.Time{}
	}
	if !t.quarantineUntil.IsZero() && req[0] == t.quarantineSlave {
		t.drainLate()
		if t.link == nil {
			return nil, fmt.Errorf("%w: lost while draining a late reply: %v", ErrLineDown, t.lost)
		}
	}
	if err := t.waitSilence(); err != nil {
		if errors.Is(err, errBabble) {
			t.babble()
		} else {
			t.drop(err)
		}
		return nil, fmt.Errorf("%w: wait for silence: %v", ErrLineDown, err)
	}
	t.deadline = time.Now().Add(t.timeout)
	if !t.limit.IsZero() && t.limit.Before(t.deadline) {
		t.deadline = t.limit
	}
	var junk int
	var derr error
	if !t.clean || t.framing != framingMBAP {
		junk, derr = t.link.Discard()
	}
	t.clean = false
	if junk > 0 {
		t.junkRounds++
	}
	if derr == nil && t.junkRounds >= babbleRounds {
		derr = errBabble // noise before every request, and no good exchange between
	}
	if derr != nil {
		if errors.Is(derr, errBabble) {
			t.babble()
		} else {
			t.drop(derr)
		}
		return nil, fmt.Errorf("%w: flush input: %v", ErrLineDown, derr)
	}
	if _, err := t.link.Write(req); err != nil {
		t.drop(err)
		return nil, fmt.Errorf("write: %w", err)
	}
	t.lastIO = time.Now()
	var resp []byte
	var err error
	if t.framing == framingMBAP {
		resp, err = t.readMBAP(req)
	} else {
		resp, err = t.readRTU(req)
	}
	t.lastIO = time.Now()
	if errors.Is(err, ErrTimeout) || isTruncated(err) {
		t.quarantineUntil, t.quarantineSlave = t.lastIO.Add(t.lateWindow), req[0]
	}
	if err == nil {
		t.ok(t.lastIO)
	}
	return resp, err
}

// isTruncated: the rest of the frame may still be on its way.
func isTruncated(err error) bool {
	var fe *FrameError
	return errors.As(err, &fe) && fe.Kind == FrameLength
}

// waitSilence keeps 3.5 characters of silence before a request by listening
// to the line: a read timeout is precise to the syscall (time.Sleep overshoots
// by up to a millisecond here, a third of a frame at 115200), and any noise
// restarts the silence as the spec wants. A line that does not fall silent
// within the exchange's timeout, or sends more than maxDrain bytes, babbles.
func (t *transport) waitSilence() error {
	giveUp := time.Now().Add(t.timeout)
	got := 0
	for {
		until := t.lastIO.Add(t.silence)
		now := time.Now()
		if !now.Before(until) {
			return nil
		}
		if got > maxDrain || now.After(giveUp) {
			return errBabble
		}
		n, err := t.link.ReadBefore(t.buf[:], until)
		switch {
		case n > 0:
			got += n
			t.lastIO = time.Now()
		case errors.Is(err, ErrTimeout):
			return nil
		case err != nil:
			return err
		}
	}
}

// drainLate discards what arrives until the quarantine ends, or until the
// line has been quiet for a few characters after bytes came (the late reply
// is in and done). It reads no more than maxDrain bytes. Bytes read after
// the quarantine's end may have waited in the kernel while this process was
// stalled (a loaded board), so they are a babble only if the line is still
// sending a quiet interval later; then the line is marked and closed.
func (t *transport) drainLate() {
	end := t.quarantineUntil
	t.quarantineUntil = time.Time{}
	quiet := max(4*t.silence, 2*time.Millisecond)
	got := 0
	late := false // bytes came at or after the quarantine's end
	for {
		deadline := end
		if q := time.Now().Add(quiet); got > 0 && (late || q.Before(end)) {
			deadline = q
		}
		n, err := t.link.ReadBefore(t.buf[:], deadline)
		if n > 0 {
			got += n
			t.lastIO = time.Now()
			if got > maxDrain || late {
				t.babble()
				return
			}
			late = !t.lastIO.Before(end)
			continue
		}
		if err != nil && !errors.Is(err, ErrTimeout) {
			t.drop(err)
			return
		}
		return // quiet after the reply, or the quarantine is over
	}
}

// fill reads into t.buf until it holds want bytes or the deadline passes,
// never past want: on a serial line a byte more would be the next frame's.
func (t *transport) fill(have, want int) (int, error) { return t.fillUpTo(have, want, want) }

// fillAtLeast reads into t.buf, as much as each read gives, until it
// holds at least want bytes or the deadline passes; it returns how many it
// holds (Modbus TCP: frames carry their length and transaction id).
func (t *transport) fillAtLeast(have, want int) (int, error) {
	return t.fillUpTo(have, want, len(t.buf))
}

func (t *transport) fillUpTo(have, want, limit int) (int, error) {
	for have < want {
		n, err := t.link.ReadBefore(t.buf[have:limit], t.deadline)
		have += n
		if errors.Is(err, ErrTimeout) {
			if have == 0 {
				return 0, ErrTimeout
			}
			return have, &FrameError{Kind: FrameLength, Msg: fmt.Sprintf("truncated: %d of %d bytes", have, want), Raw: clone(t.buf[:have])}
		}
		if err != nil {
			t.drop(err)
			return have, fmt.Errorf("read: %w", err)
		}
	}
	return have, nil
}

func (t *transport) readRTU(req []byte) ([]byte, error) {
	want, err := rtuReplyLen(req)
	if err != nil {
		return nil, err
	}
	for {
		have, err := t.fill(0, 3)
		if err != nil {
			return nil, err
		}
		if t.buf[0] != req[0] {
			// A frame from another slave: a late reply to an earlier
			// exchange. Skip it whole if it is one; the addressed slave's
			// own reply may follow within the deadline.
			if n := strayLen(t.buf[:3]); n > 0 {
				if _, err := t.fill(have, n); err == nil && CRC16(t.buf[:n-2]) == uint16(t.buf[n-2])|uint16(t.buf[n-1])<<8 {
					t.strays.Add(1)
					continue
				}
			}
			// not a whole frame: noise, or a reply that is truly wrong
		}
		n := want
		if t.buf[1] == req[1]|0x80 {
			n = 5 // an exception reply
		}
		if t.buf[0] != req[0] {
			n = have
		}
		if _, err := t.fill(have, n); err != nil {
			return nil, err
		}
		resp := clone(t.buf[:n])
		if err := checkRTUReply(req, resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// strayLen is the length of the reply frame that starts with head (address,
// function, first data byte), or 0 when it cannot be a reply.
func strayLen(head []byte) int {
	switch fc := head[1]; {
	case fc&0x80 != 0 && fc&0x7f >= 1 && fc&0x7f <= 16:
		return 5
	case fc == 1 || fc == 2 || fc == 3 || fc == 4:
		return 5 + int(head[2])
	case fc == 5 || fc == 6 || fc == 15 || fc == 16:
		return 8
	}
	return 0
}

// readMBAP reads Modbus TCP replies until the one with our transaction id;
// a stale reply to an earlier, timed-out request is skipped. A socket read
// takes whatever has arrived (usually the whole reply in one syscall);
// bytes after a frame are the next frame's start. The exchange is clean
// when nothing follows our reply.
func (t *transport) readMBAP(req []byte) ([]byte, error) {
	have := 0
	for {
		var err error
		if have, err = t.fillAtLeast(have, 7); err != nil {
			return nil, err
		}
		l := int(binary.BigEndian.Uint16(t.buf[4:]))
		if l < 2 || l > 254 {
			t.drop(fmt.Errorf("MBAP length %d", l))
			return nil, &FrameError{Kind: FrameLength, Msg: fmt.Sprintf("MBAP length %d", l), Raw: clone(t.buf[:7])}
		}
		want := 6 + l
		if have, err = t.fillAtLeast(have, want); err != nil {
			return nil, err
		}
		resp := clone(t.buf[:want])
		have = copy(t.buf[:], t.buf[want:have])
		if binary.BigEndian.Uint16(resp) != binary.BigEndian.Uint16(req) {
			continue // a late reply to an earlier request
		}
		if resp[6] != req[6] {
			return nil, &FrameError{Kind: FrameSlave, Msg: fmt.Sprintf("reply from unit %d to a request for unit %d", resp[6], req[6]), Raw: resp}
		}
		if resp[7] != req[7] && resp[7] != req[7]|0x80 {
			return nil, &FrameError{Kind: FrameFunction, Msg: fmt.Sprintf("function %02X in reply to %02X", resp[7], req[7]), Raw: resp}
		}
		if resp[7] == req[7] && (req[7] == 3 || req[7] == 4) {
			wantBytes := 2 * int(binary.BigEndian.Uint16(req[10:]))
			if len(resp) < 9 || int(resp[8]) != wantBytes || len(resp) != 9+wantBytes {
				return nil, &FrameError{Kind: FrameLength, Msg: fmt.Sprintf("byte count mismatch, want %d", wantBytes), Raw: resp}
			}
		}
		t.clean = have == 0 // bytes after our reply: the next request flushes first
		return resp, nil
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
