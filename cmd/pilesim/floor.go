package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"pilebridge/internal/cli"
)

// cmdFloor is the I/O skeleton of the bridge and nothing else, for `pilesim
// scale` to measure the CPU floor of its setup: one goroutine per line,
// one per slave polling it every interval with the same Modbus TCP read,
// the same deadlines; no decoding, sessions, storage or metrics.
func cmdFloor(ctx context.Context, args []string) error {
	fs := cli.Flags("floor", "pilesim floor [--slaves N] [--fc F] [--addr A] [--qty Q] [--interval D] ADDR...",
		"A bare Modbus TCP client doing the bridge's reads and nothing else, for scale to measure the CPU floor of its setup.", os.Stdout)
	slaves := fs.Int("slaves", 16, "slaves per line, ids 1..N")
	fc := fs.Uint("fc", 3, "read function, 3 or 4")
	addr := fs.Uint("addr", 0, "first register")
	qty := fs.Uint("qty", 20, "registers per read")
	every := fs.Duration("interval", time.Second, "poll interval per slave")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *qty < 1 || *qty > 125 || (*fc != 3 && *fc != 4) || fs.NArg() == 0 {
		return fmt.Errorf("floor: want --fc 3|4, --qty 1..125 and line addresses")
	}
	pdu := []byte{byte(*fc), byte(*addr >> 8), byte(*addr), 0, byte(*qty)}
	errs := make(chan error, fs.NArg())
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
