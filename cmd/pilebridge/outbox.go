package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/cli"
	"pilebridge/internal/config"
	"pilebridge/internal/dbfile"
	"pilebridge/internal/station"
	"pilebridge/uploader"
)

// cmdOutbox works on the database directly when the daemon is stopped, and
// through the daemon's listen address while it runs (bbolt allows one writer).
func cmdOutbox(args []string, stdout io.Writer) error {
	const about = "The records waiting for the platform. list: pending and parked records (--all: and the last delivered). retry: requeue a parked record, or all of them. Works on the database when the daemon is stopped, through its listen address while it runs."
	if len(args) == 0 || cli.WantsHelp(args[:1]) {
		fs, _ := configFlag("outbox", "pilebridge outbox list [--all] | retry ORDER|--parked  --config FILE", about, stdout)
		fs.Bool("all", false, "list: include recently delivered records")
		fs.Bool("parked", false, "retry: requeue every parked record")
		fs.Usage()
		if len(args) == 0 {
			return fmt.Errorf("outbox: want list or retry")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	fs, path := configFlag("outbox "+sub, "pilebridge outbox "+sub+" ... --config FILE", about, stdout)
	var all, parked *bool
	switch sub {
	case "list":
		all = fs.Bool("all", false, "include recently delivered records")
		parked = new(bool)
	case "retry":
		all = new(bool)
		parked = fs.Bool("parked", false, "requeue every parked record")
	default:
		return fmt.Errorf("outbox: unknown subcommand %q: want list or retry", sub)
	}
	// accept ORDER before or after the flags
	var order string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		order, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if order == "" {
		order = fs.Arg(0)
	}
	load := config.Load
	if sub == "list" {
		load = config.LoadToRead // a read-only card is still read
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		l, err := outboxList(cfg, *all)
		if err != nil {
			return err
		}
		printListing(stdout, l)
		return nil
	case "retry":
		if order == "" && !*parked {
			return fmt.Errorf("outbox retry: give an ORDER or --parked")
		}
		res, err := outboxRetry(cfg, order)
		if err != nil {
			return err
		}
		if order != "" && res.Requeued == 0 && res.Dropped == 0 {
			return fmt.Errorf("outbox retry: no parked record of order %q (see `pilebridge outbox list`)", order)
		}
		fmt.Fprintf(stdout, "requeued %d record(s)", res.Requeued)
		if res.Dropped > 0 {
			fmt.Fprintf(stdout, "; dropped %d progress record(s) of orders already billed", res.Dropped)
		}
		fmt.Fprintln(stdout)
		return nil
	}
	return fmt.Errorf("outbox: unknown subcommand %q (want list or retry)", sub)
}

// withOutbox opens the database (read-only when the command only reads: a
// card the kernel turned read-only is still read) and runs f on its outbox.
// It reports false when the database is held by the running daemon.
func withOutbox(cfg *config.Config, readOnly bool, f func(*uploader.Outbox) error) (bool, error) {
	open := station.OpenDB
	if readOnly {
		open = station.OpenDBReadOnly
	}
	db, err := open(cfg.DataDir, 300*time.Millisecond)
	if err != nil {
		if errors.Is(err, dbfile.ErrInUse) {
			return false, err
		}
		return true, err
	}
	defer db.Close()
	box, err := uploader.NewOutbox(db, cfg.Platform.OutboxMaxRecords, zerolog.Nop())
	if err != nil {
		return true, err
	}
	return true, f(box)
}

func outboxList(cfg *config.Config, all bool) (station.OutboxListing, error) {
	var l station.OutboxListing
	done, err := withOutbox(cfg, true, func(box *uploader.Outbox) error {
		var err error
		l.Pending, l.Parked, l.Delivered, err = box.List(all)
		return err
	})
	if done {
		return l, err
	}
	c, err := station.NewClient(cfg)
	if err != nil {
		return l, err
	}
	return c.Outbox(all)
}

func outboxRetry(cfg *config.Config, order string) (station.RequeueResult, error) {
	var res station.RequeueResult
	done, err := withOutbox(cfg, false, func(box *uploader.Outbox) error {
		var err error
		res.Requeued, res.Dropped, err = box.Requeue(order)
		return err
	})
	if done {
		return res, err
	}
	c, err := station.NewClient(cfg)
	if err != nil {
		return res, err
	}
	return c.Retry(order)
}

func printListing(w io.Writer, l station.OutboxListing) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSEQ\tORDER\tKIND\tSTATE\tQUANTITY_WH\tFEES_FEN\tATTEMPTS\tLAST_ERROR")
	row := func(queue string, e uploader.Entry) {
		r := e.Record
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d+%d\t%d\t%s\n", queue, e.Seq, r.Order, r.Kind, r.State, r.QuantityWh, r.EnergyFen, r.ServiceFen, e.Attempts, e.LastError)
	}
	for _, e := range l.Pending {
		queue := "pending"
		if e.PlateWait && e.Record.Plate == "" {
			// held, not failing: it leaves when a plate comes or the wait ends
			queue = "waits for a plate until " + e.NextAttempt.Local().Format("15:04:05")
		}
		row(queue, e)
	}
	for _, e := range l.Parked {
		row("parked", e)
	}
	for _, e := range l.Delivered {
		row("delivered", e)
	}
	_ = tw.Flush()
}
