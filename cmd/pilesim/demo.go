package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"pilebridge/internal/cli"
	"pilebridge/internal/config"
	"pilebridge/simulator"
)

// cmdDemo runs the whole chain on one machine: the platform stand-in and the
// simulated pile in this process, the bridge as a child, until the final
// bill arrives. It leaves nothing running.
func cmdDemo(ctx context.Context, args []string, out io.Writer, log zerolog.Logger) error {
	fs := cli.Flags("demo", "pilesim demo [--bridge BIN] [--config FILE] [script flags]",
		"The stand-in, a simulated pile and the bridge on this machine, one charging session, then exit; the bill is checked against the meter. Runs in a temporary directory of its own.", os.Stdout)
	bridge := fs.String("bridge", "./dist/pilebridge", "pilebridge binary")
	cfgPath := fs.String("config", "configs/demo.yaml", "bridge config")
	limit := fs.Duration("timeout", 55*time.Second, "give up after this long")
	var o serveOpts
	serveFlags(fs, &o)
	// a short session by default: 22 kW for 20 s
	_ = fs.Set("idle", "1s")
	_ = fs.Set("plugged", "1s")
	_ = fs.Set("starting", "2s")
	_ = fs.Set("charge", "20s")
	_ = fs.Set("power", "22000")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The demo runs in a directory of its own with free ports: the data_dir,
	// listen address, stand-in and line of the config are replaced, so a
	// real config's data (unsent bills) is never touched and two demos on
	// one host do not collide.
	work, err := os.MkdirTemp("", "pilebridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfgFile, err := demoConfig(*cfgPath, work)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		return err
	}
	if len(cfg.Buses) == 0 || len(cfg.Piles) == 0 {
		return fmt.Errorf("%s: the demo needs one bus and one pile", *cfgPath)
	}
	u, err := url.Parse(cfg.Platform.BaseURL)
	if err != nil {
		return fmt.Errorf("platform.base_url: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()

	plat, err := simulator.NewPlatform(cfg.Platform.AppID, cfg.Platform.AppSecret, "")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return fmt.Errorf("stand-in: %w", err)
	}
	srv := &http.Server{Handler: plat, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	o.link = cfg.Buses[0].Device
	o.profile = cfg.Piles[0].Ports[0].Profile
	o.slaves = fmt.Sprint(cfg.Piles[0].Ports[0].Slave)
	simCtx, simStop := context.WithCancel(ctx)
	defer simStop()
	piles, _, err := startSim(simCtx, o, log.Level(zerolog.WarnLevel))
	if err != nil {
		return err
	}
	startWh, err := piles[0].MeterWh()
	if err != nil {
		return err
	}

	cmd := exec.CommandContext(ctx, *bridge, "run", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start bridge: %w", err)
	}
	fmt.Fprintf(out, "demo: stand-in on %s, pile %s on %s, bridge pid %d\n", u.Host, o.profile, o.link, cmd.Process.Pid)

	var final map[string]any
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-tick.C:
			for _, r := range plat.Received(simulator.PathReplenish) {
				var m map[string]any
				if json.Unmarshal(r.Body, &m) == nil && (m["state"] == float64(3) || m["state"] == float64(-1)) {
					final = m
					break wait
				}
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	simStop()

	recs := plat.Received(simulator.PathReplenish)
	fmt.Fprintf(out, "\nplatform received %d replenish/sync records, %d device/sync reports, rejected %d\n",
		len(recs), len(plat.Received(simulator.PathDevice)), plat.Rejected())
	for _, r := range recs {
		var m map[string]any
		_ = json.Unmarshal(r.Body, &m)
		fmt.Fprintf(out, "  %s order=%v state=%v quantity=%v energy_value=%v fee_value=%v desc=%v\n",
			r.At.Format("15:04:05.000"), m["order"], m["state"], m["quantity"], m["energy_value"], m["fee_value"], m["state_desc"])
	}
	if final == nil {
		return fmt.Errorf("no final bill within %s", *limit)
	}
	endWh, err := piles[0].MeterWh()
	if err != nil {
		return err
	}
	delta := endWh - startWh
	fmt.Fprintf(out, "\nfinal bill: order %v, quantity %v Wh (simulator delta %d Wh), energy %v fen, service %v fen, state %v (%v), %v → %v, vin %v, plate %v\n",
		final["order"], final["quantity"], delta, final["energy_value"], final["fee_value"], final["state"], final["state_desc"],
		final["start_time"], final["end_time"], final["vin"], final["plate"])
	if final["quantity"] != float64(delta) {
		return fmt.Errorf("bill quantity %v differs from the meter's delta %d", final["quantity"], delta)
	}
	if err := printFees(out, cfg.Tariff, final); err != nil {
		return err
	}
	fmt.Fprintln(out, "demo ok")
	return nil
}

// demoConfig writes the config at path into work with its own data_dir,
// listen address, stand-in address and serial line, and returns its path.
func demoConfig(path, work string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	listen, err := freeAddr()
	if err != nil {
		return "", err
	}
	stand, err := freeAddr()
	if err != nil {
		return "", err
	}
	doc["data_dir"] = filepath.Join(work, "data")
	doc["listen"] = listen
	plat, _ := doc["platform"].(map[string]any)
	if plat == nil {
		return "", fmt.Errorf("%s: no platform section", path)
	}
	plat["base_url"] = "http://" + stand
	buses, _ := doc["buses"].([]any)
	if len(buses) == 0 {
		return "", fmt.Errorf("%s: the demo needs one bus", path)
	}
	bus, _ := buses[0].(map[string]any)
	if bus == nil {
		return "", fmt.Errorf("%s: buses[0] is not a mapping", path)
	}
	bus["device"] = filepath.Join(work, "ttyV0")
	out, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	file := filepath.Join(work, "pilebridge.yaml")
	return file, os.WriteFile(file, out, 0o600)
}

// printFees prints the tariff and the arithmetic of the final bill's fees,
// done here apart from the bridge (yuan/kWh × Wh = fen/10), and checks the
// bill against it: a session within one period is priced at that period's
// prices and rounded to the fen once, half up.
func printFees(out io.Writer, t config.Tariff, final map[string]any) error {
	loc, err := time.LoadLocation(t.TimeZone)
	if err != nil {
		return fmt.Errorf("tariff.time_zone: %w", err)
	}
	fmt.Fprintf(out, "\ntariff (%s), yuan per kWh, electricity + service:\n", t.TimeZone)
	for _, p := range t.Periods {
		fmt.Fprintf(out, "  %s-%s %-6s %s + %s\n", p.Start, p.End, p.Type, p.Electricity, p.Service)
	}
	start, err1 := time.Parse("2006-01-02T15:04:05.000Z", fmt.Sprint(final["start_time"]))
	end, err2 := time.Parse("2006-01-02T15:04:05.000Z", fmt.Sprint(final["end_time"]))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("final bill times %v → %v: %v %v", final["start_time"], final["end_time"], err1, err2)
	}
	in := func(at time.Time) *config.Period {
		hm := at.In(loc).Format("15:04")
		for i, p := range t.Periods {
			if (p.Start <= p.End && hm >= p.Start && hm < p.End) || (p.Start > p.End && (hm >= p.Start || hm < p.End)) {
				return &t.Periods[i]
			}
		}
		return nil
	}
	p := in(start)
	if p == nil || p != in(end.Add(-time.Millisecond)) {
		fmt.Fprintln(out, "fees: the session spans tariff periods: `pilebridge sessions --order ORDER` shows each period's share")
		return nil
	}
	wh := int64(final["quantity"].(float64))
	fmt.Fprintf(out, "fees: %d Wh, %s → %s %s, all in the %s period %s-%s:\n", wh,
		start.In(loc).Format("15:04:05"), end.In(loc).Format("15:04:05"), t.TimeZone, p.Type, p.Start, p.End)
	for _, f := range []struct {
		name, price, field string
	}{{"electricity", p.Electricity, "energy_value"}, {"service", p.Service, "fee_value"}} {
		price, err := tenThousandths(f.price)
		if err != nil {
			return fmt.Errorf("tariff price %q: %w", f.price, err)
		}
		milliFen := wh * price / 100 // Wh × price/10000 yuan/kWh = Wh × price / 100000 fen
		fen := (wh*price + 50_000) / 100_000
		billed := int64(final[f.field].(float64))
		fmt.Fprintf(out, "  %-11s %d Wh × %s yuan/kWh = %d.%03d fen → %d fen; the bill's %s: %d\n",
			f.name, wh, f.price, milliFen/1000, milliFen%1000, fen, f.field, billed)
		if billed != fen {
			return fmt.Errorf("the bill's %s is %d fen; %d Wh at %s yuan/kWh is %d", f.field, billed, wh, f.price, fen)
		}
	}
	return nil
}

// tenThousandths reads a price with at most 4 decimals as 0.0001 yuan.
func tenThousandths(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 4 {
		return 0, fmt.Errorf("more than 4 decimals")
	}
	frac += strings.Repeat("0", 4-len(frac))
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	return w*10000 + f, nil
}
