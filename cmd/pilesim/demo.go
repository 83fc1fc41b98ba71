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
