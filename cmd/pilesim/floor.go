package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.bug.st/serial"

	"pilebridge/driver"
	"pilebridge/internal/cli"
)

// cmdFloor is the I/O skeleton of the bridge and nothing else, for `pilesim
// scale` and the board's benchmark to measure the CPU floor of their setup:
// one goroutine per line, one per slave polling it every interval with the
// same Modbus read, the same deadlines; no decoding, sessions, storage or
// metrics. Lines are Modbus TCP addresses, or with --serial one RTU line.
func cmdFloor(ctx context.Context, args []string) error {
	fs := cli.Flags("floor", "pilesim floor [--slaves N] [--fc F] [--addr A] [--qty Q] [--interval D] ADDR... | --serial DEV [--baud B]",
		"A bare Modbus client doing the bridge's reads and nothing else, for scale and bench-board to measure the CPU floor of their setup.", os.Stdout)
	slaves := fs.Int("slaves", 16, "slaves per line, ids 1..N")
	fc := fs.Uint("fc", 3, "read function, 3 or 4")
	addr := fs.Uint("addr", 0, "first register")
	qty := fs.Uint("qty", 20, "registers per read")
	every := fs.Duration("interval", time.Second, "poll interval per slave")
	dev := fs.String("serial", "", "one RTU line on this serial device (8N1) instead of TCP addresses")
	baud := fs.Int("baud", 9600, "the serial line's baud rate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *qty < 1 || *qty > 125 || (*fc != 3 && *fc != 4) || (fs.NArg() == 0) == (*dev == "") {
		return fmt.Errorf("floor: want --fc 3|4, --qty 1..125 and either line addresses or --serial")
	}
	pdu := []byte{byte(*fc), byte(*addr >> 8), byte(*addr), 0, byte(*qty)}
	errs := make(chan error, fs.NArg()+1)
	if *dev != "" {
		port, err := serial.Open(*dev, &serial.Mode{BaudRate: *baud, DataBits: 8})
		if err != nil {
			return fmt.Errorf("floor: open %s: %w", *dev, err)
		}
		defer port.Close()
		reqs := make(chan floorReq)
		go func() { errs <- floorRTU(port, pdu, reqs) }()
		for s := 1; s <= *slaves; s++ {
			go floorSlave(ctx, byte(s), *every, reqs)
		}
	}
	for _, a := range fs.Args() {
		c, err := net.Dial("tcp", a)
		if err != nil {
			return err
		}
		defer c.Close()
		reqs := make(chan floorReq)
		go func() { errs <- floorLine(c, pdu, reqs) }()
		for s := 1; s <= *slaves; s++ {
			go floorSlave(ctx, byte(s), *every, reqs)
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

type floorReq struct {
	slave byte
	done  chan error
}

func floorLine(c net.Conn, pdu []byte, reqs <-chan floorReq) error {
	var tid uint16
	buf := make([]byte, 9+2*int(pdu[4]))
	for r := range reqs {
		tid++
		adu := append([]byte{0, 0, 0, 0, 0, 6, r.slave}, pdu...)
		binary.BigEndian.PutUint16(adu, tid)
		if err := c.SetWriteDeadline(time.Now().Add(2 * time.Second)); err != nil {
			return err
		}
		if _, err := c.Write(adu); err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf)
		r.done <- err
		if err != nil {
			return err
		}
	}
	return nil
}

// floorRTU is floorLine on a serial line: the RTU frame with its CRC, the
// whole reply read before the same 500 ms deadline, checked no further.
func floorRTU(port serial.Port, pdu []byte, reqs <-chan floorReq) error {
	buf := make([]byte, 5+2*int(pdu[4]))
	adu := make([]byte, 0, 8)
	for r := range reqs {
		adu = driver.AppendCRC(append(append(adu[:0], r.slave), pdu...))
		if _, err := port.Write(adu); err != nil {
			r.done <- err
			return err
		}
		err := readRTU(port, buf, time.Now().Add(500*time.Millisecond))
		r.done <- err
		if err != nil {
			return err
		}
	}
	return nil
}

func readRTU(port serial.Port, buf []byte, deadline time.Time) error {
	for got := 0; got < len(buf); {
		wait := time.Until(deadline)
		if wait <= 0 {
			return fmt.Errorf("floor: reply %d of %d bytes before the deadline", got, len(buf))
		}
		if err := port.SetReadTimeout(wait); err != nil {
			return err
		}
		n, err := port.Read(buf[got:])
		if err != nil {
			return err
		}
		got += n
	}
	return nil
}

func floorSlave(ctx context.Context, slave byte, every time.Duration, reqs chan<- floorReq) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done := make(chan error, 1)
		select {
		case reqs <- floorReq{slave, done}:
		case <-ctx.Done():
			return
		}
		if <-done != nil {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
