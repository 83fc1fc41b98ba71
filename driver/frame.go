package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// CRC16 is CRC-16/MODBUS (init 0xFFFF, reflected poly 0xA001). The wire carries
// it low byte first.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// AppendCRC appends the CRC of frame to frame, low byte first.
func AppendCRC(frame []byte) []byte {
	c := CRC16(frame)
	return append(frame, byte(c), byte(c>>8))
}

// ErrTimeout means the slave did not answer (completely) before the deadline.
var ErrTimeout = errors.New("no reply before deadline")

// ErrLineDown means the serial port or TCP connection could not be opened;
// the driver retries it with backoff.
var ErrLineDown = errors.New("line down")

// ErrSlaveDown means the slave failed repeatedly and is in fail-fast backoff:
// the request was not put on the wire.
var ErrSlaveDown = errors.New("slave in backoff after repeated failures")

// FrameKind classifies a malformed reply.
type FrameKind string

const (
	FrameCRC      FrameKind = "crc"
	FrameSlave    FrameKind = "slave_id"
	FrameFunction FrameKind = "function"
	FrameLength   FrameKind = "length"
)

// FrameError is a reply that arrived but cannot be trusted.
type FrameError struct {
	Kind FrameKind
	Msg  string
	Raw  []byte
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("bad reply (%s): %s [% x]", e.Kind, e.Msg, e.Raw)
}

// ExceptionError is a Modbus exception reply from the slave.
type ExceptionError struct {
	Function byte
	Code     byte
}

var exceptionNames = map[byte]string{
	1: "illegal function", 2: "illegal data address", 3: "illegal data value",
	4: "server device failure", 5: "acknowledge", 6: "server device busy",
	8: "memory parity error", 0x0A: "gateway path unavailable",
	0x0B: "gateway target failed to respond",
}

func (e *ExceptionError) Error() string {
	name, ok := exceptionNames[e.Code]
	if !ok {
		name = "unknown exception"
	}
	return fmt.Sprintf("modbus exception %02X (%s) to function %02X", e.Code, name, e.Function)
}

// rtuReplyLen sizes the reply to an RTU request from the request itself, so
// the transporter never waits on a silence that a slow line may not keep.
func rtuReplyLen(req []byte) (int, error) {
	if len(req) < 4 {
		return 0, fmt.Errorf("request of %d bytes is too short", len(req))
	}
	switch req[1] {
	case 1, 2:
		n := int(binary.BigEndian.Uint16(req[4:]))
		return 5 + (n+7)/8, nil
	case 3, 4:
		n := int(binary.BigEndian.Uint16(req[4:]))
		return 5 + 2*n, nil
	case 5, 6, 15, 16:
		return 8, nil
	default:
		return 0, fmt.Errorf("function %02X not supported by the transporter", req[1])
	}
}

// checkRTUReply validates a complete RTU reply against its request.
func checkRTUReply(req, resp []byte) error {
	if len(resp) < 5 {
		return &FrameError{Kind: FrameLength, Msg: fmt.Sprintf("%d bytes", len(resp)), Raw: resp}
	}
	body := resp[:len(resp)-2]
	got := uint16(resp[len(resp)-2]) | uint16(resp[len(resp)-1])<<8
	if want := CRC16(body); got != want {
		return &FrameError{Kind: FrameCRC, Msg: fmt.Sprintf("crc %04X, computed %04X", got, want), Raw: resp}
	}
	if resp[0] != req[0] {
		return &FrameError{Kind: FrameSlave, Msg: fmt.Sprintf("reply from slave %d to a request for slave %d", resp[0], req[0]), Raw: resp}
	}
	if resp[1] == req[1]|0x80 {
		return nil // exception: goburrow's client decodes it
	}
	if resp[1] != req[1] {
		return &FrameError{Kind: FrameFunction, Msg: fmt.Sprintf("function %02X in reply to %02X", resp[1], req[1]), Raw: resp}
	}
	if req[1] == 3 || req[1] == 4 {
		want := 2 * int(binary.BigEndian.Uint16(req[4:]))
		if int(resp[2]) != want || len(resp) != 5+want {
			return &FrameError{Kind: FrameLength, Msg: fmt.Sprintf("byte count %d, want %d", resp[2], want), Raw: resp}
		}
	}
	return nil
}
