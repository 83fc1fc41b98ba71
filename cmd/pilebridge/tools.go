package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/driver"
	"pilebridge/internal/cli"
	"pilebridge/meter"
)

// cmdScan lists serial ports from sysfs without opening any, so a running
// daemon's line settings are never disturbed.
func cmdScan(args []string, stdout io.Writer) error {
	fs := cli.Flags("scan", "pilebridge scan",
		"Lists the serial ports of this board with their USB vendor and product ids, serial numbers and /dev/serial/by-id paths, from sysfs. Opens none.", stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ports, err := driver.ListPorts("/sys", "/dev")
	if err != nil {
		return fmt.Errorf("list serial ports: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tDRIVER\tUSB VID:PID\tSERIAL\tPRODUCT\tBY-ID")
	for _, p := range ports {
		usb := "-"
		if p.VID != "" {
			usb = p.VID + ":" + p.PID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(p.Driver), usb, dash(p.Serial), dash(p.Product), dash(p.ByID))
	}
	if len(ports) == 0 {
		fmt.Fprintln(tw, "(no serial ports found)")
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdProfiles(args []string, stdout io.Writer) error {
	fs := cli.Flags("profiles", "pilebridge profiles [--dir DIR]",
		"Lists the meter and pile profiles, embedded and from the user directory, and where each came from.", stdout)
	dir := fs.String("dir", "", "user profiles directory (profiles_dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg, err := meter.LoadRegistry(*dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tREADS\tSOURCE\tDESCRIPTION")
	for _, n := range reg.Names() {
		p, _ := reg.Get(n)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Name, p.Kind, len(p.Blocks()), p.Source, p.Description)
	}
	return tw.Flush()
}

// cmdRead reads one device once and prints every field of its profile.
func cmdRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("read", "pilebridge read --device DEV --profile NAME [--slave N] [--baud B --parity P --stop-bits S] [--json]",
		"Reads one device once through a profile and prints every field in engineering units: for commissioning, before the daemon runs.", stdout)
	device := fs.String("device", "", "serial path, tcp://host:port or rtuovertcp://host:port")
	slave := fs.Int("slave", 0, "slave id (default: the profile's)")
	profile := fs.String("profile", "", "profile name")
	dir := fs.String("profiles-dir", "", "user profiles directory")
	baud := fs.Int("baud", 0, "baud (default: the profile's)")
	parity := fs.String("parity", "", "N, E or O (default: the profile's)")
	stop := fs.Int("stop-bits", 0, "1 or 2 (default: the profile's)")
	timeout := fs.Duration("timeout", time.Second, "per exchange")
	pt := fs.Int64("pt", 1, "PT ratio")
	ct := fs.Int64("ct", 1, "CT ratio")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *device == "" || *profile == "" {
		return fmt.Errorf("read needs --device and --profile")
	}
	reg, err := meter.LoadRegistry(*dir)
	if err != nil {
		return err
	}
	p, err := reg.Get(*profile)
	if err != nil {
		return err
	}
	d := p.Defaults
	pick := func(v, def, fallback int) int {
		if v != 0 {
			return v
		}
		if def != 0 {
			return def
		}
		return fallback
	}
	par := *parity
	if par == "" {
		par = d.Parity
	}
	if par == "" {
		par = "N"
	}
	id := pick(*slave, d.Slave, 1)
	if id < 1 || id > 247 {
		return fmt.Errorf("--slave %d: want 1..247", id)
	}
	log := zerolog.New(stderr).Level(zerolog.WarnLevel)
	bus, err := driver.New(driver.Config{
		Name: "read", Device: *device,
		Serial:    driver.SerialParams{Baud: pick(*baud, d.Baud, 9600), DataBits: 8, Parity: strings.ToUpper(par), StopBits: pick(*stop, d.StopBits, 1)},
		Default:   driver.SlavePolicy{Timeout: *timeout, Retries: 1},
		DeadAfter: 100,
	}, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-bus.Done() }()
	go bus.Run(ctx)
	r, err := meter.NewPoller(bus, uint8(id), p, meter.Ratios{PT: *pt, CT: *ct}).Poll(ctx, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{"profile": p.Name, "slave": id, "time": r.Time.UTC().Format(time.RFC3339Nano)}
		for _, n := range p.FieldNames() {
			out[jsonName(n)] = fieldValue(r, n)
		}
		if r.Quantised() {
			out["energy_step_wh"] = r.EnergyStepWh()
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "profile\t%s\t(slave %d)\n", p.Name, id)
	for _, n := range p.FieldNames() {
		fmt.Fprintf(tw, "%s\t%v\t%s\n", n, fieldValue(r, n), p.UnitOf(n))
	}
	if r.Quantised() {
		fmt.Fprintf(tw, "note\tenergy register resolves only %d Wh\t\n", r.EnergyStepWh())
	}
	return tw.Flush()
}

func jsonName(field string) string {
	switch field {
	case "energy":
		return "energy_wh"
	case "power":
		return "power_w"
	case "voltage":
		return "voltage_dv"
	case "current":
		return "current_ca"
	case "soc":
		return "soc_pct"
	}
	return field
}

func fieldValue(r meter.Reading, name string) any {
	switch name {
	case "energy":
		return r.EnergyWh
	case "power":
		return r.PowerW
	case "voltage":
		return r.VoltageDV
	case "current":
		return r.CurrentCA
	case "soc":
		if !r.HasSOC {
			return nil
		}
		return r.SOC
	case "status":
		return r.Status.String()
	case "fault":
		if r.FaultText != "" {
			return fmt.Sprintf("%d %s", r.FaultCode, r.FaultText)
		}
		return r.FaultCode
	case "stop_reason":
		if r.StopReason != "" {
			return fmt.Sprintf("%d %s", r.StopCode, r.StopReason)
		}
		return r.StopCode
	case "vin":
		return r.VIN
	}
	return r.Extra[name]
}
