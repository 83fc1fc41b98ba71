package driver

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func readReq(slave, fc byte, addr, qty uint16) []byte {
	req := []byte{slave, fc, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(req[2:], addr)
	binary.BigEndian.PutUint16(req[4:], qty)
	return AppendCRC(req)
}

// Any bytes as a reply to a read: never a panic, and only a frame from the
// addressed slave, with a good CRC and the right length, is accepted.
func FuzzRTUReply(f *testing.F) {
	good := AppendCRC([]byte{1, 3, 4, 0, 1, 0, 2})
	f.Add(byte(1), byte(3), uint16(0), uint16(2), good)
	f.Add(byte(1), byte(3), uint16(0), uint16(2), good[:5])
	f.Add(byte(2), byte(3), uint16(0), uint16(2), good)
	f.Add(byte(1), byte(4), uint16(10), uint16(1), AppendCRC([]byte{1, 0x84, 2}))
	f.Add(byte(1), byte(3), uint16(0), uint16(125), []byte{})
	f.Fuzz(func(t *testing.T, slave, fc byte, addr, qty uint16, resp []byte) {
		req := readReq(slave, fc, addr, qty)
		if _, err := rtuReplyLen(req); err != nil {
			return
		}
		if err := checkRTUReply(req, resp); err == nil {
			if resp[0] != slave {
				t.Fatalf("accepted a reply from slave %d to slave %d", resp[0], slave)
			}
			if CRC16(resp[:len(resp)-2]) != uint16(resp[len(resp)-2])|uint16(resp[len(resp)-1])<<8 {
				t.Fatal("accepted a bad CRC")
			}
			if resp[1] == fc && (fc == 3 || fc == 4) && len(resp) != 5+2*int(qty) {
				t.Fatalf("accepted %d bytes for %d registers", len(resp), qty)
			}
		}
	})
}

// byteLink replays fixed bytes, then times out.
type byteLink struct{ r *bytes.Reader }

func (l *byteLink) Write(p []byte) (int, error) { return len(p), nil }
func (l *byteLink) ReadBefore(p []byte, _ time.Time) (int, error) {
	if l.r.Len() == 0 {
		return 0, ErrTimeout
	}
	return l.r.Read(p)
}
func (l *byteLink) Discard() (int, error) { return 0, nil }
func (l *byteLink) Close() error          { return nil }

// Any byte stream as Modbus TCP replies: never a panic, and only the reply
// with our transaction id, unit and a consistent length is accepted.
func FuzzMBAPReply(f *testing.F) {
	reply := []byte{0, 7, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2}
	stale := []byte{0, 6, 0, 0, 0, 5, 1, 3, 2, 0, 9}
	f.Add(reply)
	f.Add(append(append([]byte{}, stale...), reply...))
	f.Add(reply[:9])
	f.Add([]byte{0, 7, 0, 0, 0xff, 0xff, 1, 3})
	f.Add([]byte{0, 7, 0, 0, 0, 3, 1, 0x83, 2})
	f.Fuzz(func(t *testing.T, stream []byte) {
		tr := &transport{framing: framingMBAP, log: zerolog.Nop(), link: &byteLink{bytes.NewReader(stream)}}
		tr.deadline = time.Now().Add(time.Second)
		req := []byte{0, 7, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2}
		resp, err := tr.readMBAP(req)
		if err != nil {
			return
		}
		if binary.BigEndian.Uint16(resp) != 7 || resp[6] != 1 {
			t.Fatalf("accepted another transaction or unit: % x", resp)
		}
		if resp[7] == 3 && len(resp) != 9+4 {
			t.Fatalf("accepted %d bytes for 2 registers", len(resp))
		}
	})
}

// A whole frame from another slave ahead of the addressed slave's reply is
// skipped and counted on the line; the reply after it is taken.
func TestStrayFrameIsSkipped(t *testing.T) {
	t.Parallel()
	stray := AppendCRC([]byte{2, 3, 2, 0x12, 0x34})
	own := AppendCRC([]byte{1, 3, 2, 0, 42})
	tr := &transport{framing: framingRTU, log: zerolog.Nop(), link: &byteLink{bytes.NewReader(append(stray, own...))}}
	tr.deadline = time.Now().Add(time.Second)
	resp, err := tr.readRTU(readReq(1, 3, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp, own) || tr.strays.Load() != 1 {
		t.Fatalf("got % x, %d strays", resp, tr.strays.Load())
	}
	// garbage from another address is still an error of the exchange
	tr = &transport{framing: framingRTU, log: zerolog.Nop(), link: &byteLink{bytes.NewReader([]byte{2, 0x99, 1, 2, 3, 4, 5})}}
	tr.deadline = time.Now().Add(time.Second)
	if _, err := tr.readRTU(readReq(1, 3, 0, 1)); err == nil {
		t.Fatal("garbage accepted")
	}
}
