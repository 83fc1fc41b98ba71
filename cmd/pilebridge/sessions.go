package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"pilebridge/internal/config"
	"pilebridge/internal/station"
	"pilebridge/internal/units"
	"pilebridge/uploader"
)

// cmdSessions prints the ledger of closed sessions: on the database when
// the daemon is stopped, through its listen address while it runs.
func cmdSessions(args []string, stdout io.Writer) error {
	fs, path := configFlag("sessions", "pilebridge sessions [--since DATE] [--until DATE] [--csv|--json] --config FILE",
		"The bills of closed sessions kept for history_days, with where each delivery stands (pending, delivered with the platform's seqno, parked with its reason), for reconciliation. Works on the database when the daemon is stopped, through its listen address while it runs.", stdout)
	since := fs.String("since", "", "first day (YYYY-MM-DD, in tariff.time_zone) or RFC 3339 time; sessions that ended then or later")
	until := fs.String("until", "", "last day, included (YYYY-MM-DD), or RFC 3339 time, excluded")
	asCSV := fs.Bool("csv", false, "CSV with a header: integer Wh and fen, UTC times as the platform has them")
	asJSON := fs.Bool("json", false, "JSON, one object per session")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *asCSV && *asJSON {
		return fmt.Errorf("sessions: --csv or --json, not both")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	tariff, err := station.NewTariff(cfg) // its zone, defaults included, is the station's
	if err != nil {
		return err
	}
	loc := tariff.Loc
	from, err := parseDay(*since, loc, false)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	to, err := parseDay(*until, loc, true)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	entries, err := ledger(cfg, from, to)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	case *asCSV:
		return writeLedgerCSV(stdout, entries)
	}
	printLedger(stdout, entries, loc)
	return nil
}

// parseDay reads a day in loc (its start; with end, the next day's start)
// or an RFC 3339 instant. "" is unbounded.
func parseDay(s string, loc *time.Location, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DD or an RFC 3339 time", s)
	}
	return t, nil
}

func ledger(cfg *config.Config, since, until time.Time) ([]uploader.LedgerEntry, error) {
	var out []uploader.LedgerEntry
	done, err := withOutbox(cfg, func(box *uploader.Outbox) error {
		var err error
		out, err = box.Ledger(since, until)
		return err
	})
	if done {
		return out, err
	}
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		q.Set("until", until.Format(time.RFC3339Nano))
	}
	for path := "/sessions?" + q.Encode(); path != ""; {
		var page []uploader.LedgerEntry
		next, err := askDaemon(cfg, path, &page)
		if err != nil {
			return nil, err
		}
		out, path = append(out, page...), next
	}
	return out, nil
}

var ledgerColumns = []string{"order", "device_no", "port_no", "start_time", "end_time", "quantity_wh", "energy_fen",
	"service_fen", "total_fen", "state", "state_desc", "vin", "plate", "plate_source", "status", "seqno", "reason", "attempts", "delivered_at"}

func writeLedgerCSV(w io.Writer, entries []uploader.LedgerEntry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ledgerColumns); err != nil {
		return err
	}
	for _, e := range entries {
		r := e.Record
		delivered := ""
		if e.DeliveredAt != nil {
			delivered = e.DeliveredAt.UTC().Format(uploader.TimeLayout)
		}
		source := r.PlateSource
		if e.NoPlate {
			source = "no plate"
		}
		row := []string{r.Order, r.DeviceNo, r.PortNo, r.StartTime.UTC().Format(uploader.TimeLayout), r.EndTime.UTC().Format(uploader.TimeLayout),
			strconv.FormatInt(r.QuantityWh, 10), strconv.FormatInt(r.EnergyFen, 10), strconv.FormatInt(r.ServiceFen, 10),
			strconv.FormatInt(r.EnergyFen+r.ServiceFen, 10), strconv.Itoa(r.State), r.StateDesc, r.VIN, r.Plate, source,
			e.Status, e.Seqno, e.Reason, strconv.Itoa(e.Attempts), delivered}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func printLedger(w io.Writer, entries []uploader.LedgerEntry, loc *time.Location) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// STATE last: its Chinese text is two columns wide a character, which
	// tabwriter cannot know, so nothing is aligned after it
	fmt.Fprintln(tw, "ORDER\tPILE/PORT\tSTART\tEND\tkWh\tYUAN\tDELIVERY\tSTATE")
	var wh, fen int64
	for _, e := range entries {
		r := e.Record
		delivery := e.Status
		switch {
		case e.Seqno != "":
			delivery += " " + e.Seqno
		case e.Reason != "":
			delivery += ": " + e.Reason
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Order, r.DeviceNo, r.PortNo,
			r.StartTime.In(loc).Format(time.DateTime), r.EndTime.In(loc).Format(time.DateTime),
			units.KWh(r.QuantityWh), units.Yuan(r.EnergyFen+r.ServiceFen), delivery, r.StateDesc)
		wh, fen = wh+r.QuantityWh, fen+r.EnergyFen+r.ServiceFen
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d sessions, %s kWh, %s yuan\n", len(entries), units.KWh(wh), units.Yuan(fen))
}
