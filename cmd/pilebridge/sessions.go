package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	fs, path := configFlag("sessions", "pilebridge sessions [--since DATE] [--until DATE] [--csv|--json] [--order ORDER] --config FILE",
		"The bills of closed sessions kept for history_days, with where each delivery stands (pending, delivered with the platform's seqno, parked with its reason), for reconciliation. Works on the database when the daemon is stopped, through its listen address while it runs.", stdout)
	since := fs.String("since", "", "first day (YYYY-MM-DD, in tariff.time_zone) or RFC 3339 time; sessions that ended then or later")
	until := fs.String("until", "", "last day, included (YYYY-MM-DD), or RFC 3339 time, excluded")
	asCSV := fs.Bool("csv", false, "CSV with a header: integer Wh and fen, UTC times as the platform has them")
	asJSON := fs.Bool("json", false, "JSON, one object per session")
	order := fs.String("order", "", "one session's bill with the meter readings it comes from: the evidence for a dispute")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *asCSV && *asJSON {
		return fmt.Errorf("sessions: --csv or --json, not both")
	}
	cfg, err := config.LoadToRead(*path) // a read-only card is still read
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
	if *order != "" {
		for _, e := range entries {
			if e.Record.Order == *order {
				if *asJSON {
					enc := json.NewEncoder(stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(e)
				}
				printEvidence(stdout, e, loc)
				return nil
			}
		}
		return fmt.Errorf("sessions: no bill of order %q in the ledger (kept history_days; see pilebridge sessions)", *order)
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
	done, err := withOutbox(cfg, true, func(box *uploader.Outbox) error {
		var err error
		out, err = box.Ledger(since, until)
		return err
	})
	if done {
		return out, err
	}
	c, err := station.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return c.Sessions(since, until)
}

var ledgerColumns = []string{"order", "device_no", "port_no", "start_time", "end_time", "quantity_wh", "energy_fen",
	"service_fen", "total_fen", "state", "state_desc", "vin", "plate", "plate_source", "status", "seqno", "reason", "attempts", "delivered_at",
	"start_reading", "end_reading"}

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
			e.Status, e.Seqno, e.Reason, strconv.Itoa(e.Attempts), delivered, "", ""}
		if ev := r.Evidence; ev != nil {
			row[len(row)-2], row[len(row)-1] = units.KWhOfMWh(ev.StartMWh), units.KWhOfMWh(ev.EndMWh)
		}
		for i := range row {
			row[i] = csvText(row[i])
		}
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
	zone := time.Now().In(loc).Format("MST -07:00")
	fmt.Fprintf(tw, "ORDER\tPILE/PORT\tSTART (%s)\tEND\tkWh\tYUAN\tDELIVERY\tSTATE\n", zone)
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
	noun := "sessions"
	if len(entries) == 1 {
		noun = "session"
	}
	fmt.Fprintf(w, "%d %s, %s kWh, %s yuan; times in %s (%s)\n", len(entries), noun, units.KWh(wh), units.Yuan(fen), loc, zone)
}

// printEvidence shows one bill and the meter readings it comes from: the
// quantity is computable from what is printed.
func printEvidence(w io.Writer, e uploader.LedgerEntry, loc *time.Location) {
	r := e.Record
	at := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04:05.000") }
	fmt.Fprintf(w, "order %s, pile %s port %s, %s → %s (%s)\n", r.Order, r.DeviceNo, r.PortNo, at(r.StartTime), at(r.EndTime), loc)
	fmt.Fprintf(w, "  state         %d %s; delivery %s %s%s\n", r.State, r.StateDesc, e.Status, e.Seqno, e.Reason)
	var car []string
	if r.Plate != "" {
		car = append(car, fmt.Sprintf("plate %s (%s)", r.Plate, r.PlateSource))
	} else if e.NoPlate {
		car = append(car, "no plate")
	}
	if r.VIN != "" {
		car = append(car, "VIN "+r.VIN)
	}
	if len(car) > 0 {
		fmt.Fprintf(w, "  car           %s\n", strings.Join(car, ", "))
	}
	ev := r.Evidence
	if ev == nil {
		fmt.Fprintf(w, "  quantity      %d Wh; fees %s + %s yuan\n  (no readings stored with this bill: queued by an earlier version, or a failed start)\n",
			r.QuantityWh, units.Yuan(r.EnergyFen), units.Yuan(r.ServiceFen))
		return
	}
	fmt.Fprintf(w, "  start reading %s kWh at %s (register step %s kWh)\n", units.KWhOfMWh(ev.StartMWh), at(ev.StartAt), units.KWhOfMWh(ev.ResMWh))
	if !ev.StartSeenAt.IsZero() {
		fmt.Fprintf(w, "  began         while the line was away: after the start reading (the pile's last quiet one), first seen at %s; the counter moved by one\n", at(ev.StartSeenAt))
	}
	fmt.Fprintf(w, "  end reading   %s kWh at %s\n", units.KWhOfMWh(ev.EndMWh), at(ev.EndAt))
	fmt.Fprintf(w, "  end − start   %s kWh\n", units.KWhOfMWh(ev.EndMWh-ev.StartMWh))
	for _, g := range ev.Gaps {
		fmt.Fprintf(w, "  meter reset   old register last %s kWh at %s, new register first %s kWh at %s: %s kWh between them not counted\n",
			units.KWhOfMWh(g.OldMWh), at(g.OldAt), units.KWhOfMWh(g.NewMWh), at(g.NewAt), units.KWhOfMWh(g.NewMWh-g.OldMWh))
	}
	if n := ev.Resets - len(ev.Gaps); n > 0 {
		fmt.Fprintf(w, "  meter reset   %d more not listed\n", n)
	}
	if ev.Wraps > 0 {
		fmt.Fprintf(w, "  rollover      %d × %s kWh (the register wrapped)\n", ev.Wraps, units.KWhOfMWh(ev.WrapMWh))
	}
	fmt.Fprintf(w, "  counted       %s kWh = end − start − resets' gaps + rollovers\n", units.KWhOfMWh(ev.ComputedMWh()))
	fmt.Fprintf(w, "  quantity      %d Wh (rounded once, half up)\n", r.QuantityWh)
	for _, p := range ev.Periods {
		fmt.Fprintf(w, "  period        %s (%s): %s kWh → %d Wh × (%s + %s) yuan/kWh\n", p.Key, p.Type, units.KWhOfMWh(p.MWh), p.Wh, p.Electricity, p.Service)
	}
	for _, u := range ev.Unattributed {
		fmt.Fprintf(w, "  unattributed  %s kWh before this session, %s kWh at %s to %s kWh at %s: %s (in no bill)\n",
			units.KWhOfMWh(u.MWh), units.KWhOfMWh(u.FromMWh), at(u.FromAt), units.KWhOfMWh(u.ToMWh), at(u.ToAt), u.Why)
	}
	fmt.Fprintf(w, "  fees          electricity %s yuan + service %s yuan = %s yuan (each rounded once to the fen)\n",
		units.Yuan(r.EnergyFen), units.Yuan(r.ServiceFen), units.Yuan(r.EnergyFen+r.ServiceFen))
}

// csvText keeps a cell text in a spreadsheet: what the platform or a pile
// sent (a seqno, a stop reason, a VIN) could start with = + - @ or a tab or
// CR, which Excel and WPS take as a formula. A quote before it makes it
// text; a number of ours never starts so except a negative one, which is
// left alone.
func csvText(cell string) string {
	if cell == "" || strings.IndexByte("=+-@\t\r", cell[0]) < 0 {
		return cell
	}
	if _, err := strconv.ParseFloat(cell, 64); err == nil && cell[0] == '-' {
		return cell
	}
	return "'" + cell
}
