package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/driver"
	"pilebridge/internal/cli"
	"pilebridge/internal/config"
	"pilebridge/internal/units"
	"pilebridge/meter"
)

// cmdScan lists serial ports from sysfs without opening any, so a running
// daemon's line settings are never disturbed.
func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("scan", "pilebridge scan | scan --probe --device DEV [--bauds 9600,19200] [--parity N,E] [--slaves 1-247] [--profile P] [--first] [--json]",
		"Lists the serial ports of this board with their USB vendor and product ids, serial numbers and /dev/serial/by-id paths, from sysfs; opens none. "+
			"With --probe, finds the devices on a line: tries each baud and parity with short timeouts, reports every slave that answers and which profiles read plausible values from it.", stdout)
	probe := fs.Bool("probe", false, "probe a line for responders instead of listing ports")
	device := fs.String("device", "", "with --probe: serial path, tcp://host:port or rtuovertcp://host:port")
	bauds := fs.String("bauds", "9600,19200,4800,38400,115200,2400", "with --probe: baud rates to try, in order")
	parity := fs.String("parity", "N,E", "with --probe: parities to try (N, E, O)")
	slaves := fs.String("slaves", fmt.Sprintf("%d-%d", driver.MinSlave, driver.MaxSlave), "with --probe: slave ids, like 1-10,17")
	profile := fs.String("profile", "", "with --probe: try only this profile on responders (default: every one)")
	dir := fs.String("profiles-dir", "", "user profiles directory")
	first := fs.Bool("first", false, "with --probe: stop after the first setting with a responder")
	timeout := fs.Duration("timeout", 0, "with --probe: per exchange (default: three line times plus 25 ms)")
	asJSON := fs.Bool("json", false, "with --probe: print the responders as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *probe {
		if *device == "" {
			return fmt.Errorf("scan --probe needs --device")
		}
		o := probeOpts{device: *device, first: *first, timeout: *timeout}
		var err error
		if o.settings, err = probeSettings(*device, *bauds, *parity); err != nil {
			return err
		}
		if o.slaves, err = parseIDs(*slaves); err != nil {
			return fmt.Errorf("--slaves: %w", err)
		}
		reg, err := meter.LoadRegistry(*dir)
		if err != nil {
			return err
		}
		names := reg.Names()
		if *profile != "" {
			names = []string{*profile}
		}
		for _, n := range names {
			p, err := reg.Get(n)
			if err != nil {
				return err
			}
			o.profiles = append(o.profiles, p)
		}
		return cmdProbe(ctx, o, *asJSON, stdout, stderr)
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

// cmdRead reads one device through a profile (once, or every --interval
// with --watch), or dumps raw registers (--raw) for writing a profile.
func cmdRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("read", "pilebridge read --device DEV (--profile NAME [--watch] | --raw --fc 3 --addr A --count N) [--slave N] [--baud B --parity P --stop-bits S] [--json]",
		"Reads one device through a profile and prints every field in engineering units (kWh, kW, V, A), once or continuously like mbpoll; or dumps raw registers as u16, i16, u32, i32 and f32 columns, for writing a new profile. For commissioning, before the daemon runs.", stdout)
	device := fs.String("device", "", "serial path, tcp://host:port or rtuovertcp://host:port")
	slave := fs.Int("slave", 0, "slave id (default: the profile's, or 1)")
	profile := fs.String("profile", "", "profile name")
	dir := fs.String("profiles-dir", "", "user profiles directory")
	baud := fs.Int("baud", 0, "baud (default: the profile's, or 9600)")
	parity := fs.String("parity", "", "N, E or O (default: the profile's, or N)")
	stop := fs.Int("stop-bits", 0, "1 or 2 (default: the profile's, or 1)")
	timeout := fs.Duration("timeout", time.Second, "per exchange")
	pt := fs.Int64("pt", 1, "PT ratio")
	ct := fs.Int64("ct", 1, "CT ratio")
	asJSON := fs.Bool("json", false, "print JSON: one object per reading, integer units (Wh, W, 0.1 V, 0.01 A)")
	watch := fs.Bool("watch", false, "read every --interval until interrupted, one line per reading")
	interval := fs.Duration("interval", time.Second, "with --watch: time between readings")
	raw := fs.Bool("raw", false, "dump registers instead of decoding a profile (with --fc, --addr, --count)")
	fc := fs.Int("fc", 3, "with --raw: 3 (holding) or 4 (input registers)")
	addr := fs.Int("addr", 0, "with --raw: first register address (0-based, as on the wire)")
	count := fs.Int("count", 10, fmt.Sprintf("with --raw: registers to read, 1..%d", driver.MaxBlock))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *device == "" {
		return fmt.Errorf("read needs --device")
	}
	if !*raw && *profile == "" {
		return fmt.Errorf("read needs --profile (or --raw)")
	}
	if *watch && *interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %v: at least 100ms", *interval)
	}
	var p *meter.Profile
	var d meter.LineDefaults
	if !*raw {
		reg, err := meter.LoadRegistry(*dir)
		if err != nil {
			return err
		}
		if p, err = reg.Get(*profile); err != nil {
			return err
		}
		d = p.Defaults
	}
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
		par = driver.DefaultSerial.Parity
	}
	id := pick(*slave, d.Slave, driver.DefaultSlave)
	if id < driver.MinSlave || id > driver.MaxSlave {
		return fmt.Errorf("--slave %d: want %d..%d", id, driver.MinSlave, driver.MaxSlave)
	}
	// the driver's log lines are the daemon's; here what went wrong comes
	// back as the command's one human message
	log := zerolog.Nop()
	bus, err := driver.New(driver.Config{
		Name: "read", Device: *device,
		Serial:    driver.SerialParams{Baud: pick(*baud, d.Baud, driver.DefaultSerial.Baud), DataBits: driver.DefaultSerial.DataBits, Parity: strings.ToUpper(par), StopBits: pick(*stop, d.StopBits, driver.DefaultSerial.StopBits)},
		Default:   driver.SlavePolicy{Timeout: *timeout, Retries: 1},
		DeadAfter: 100, DeadBase: config.DeadBase, DeadMax: config.DeadMax,
	}, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-bus.Done() }()
	go bus.Run(ctx)
	if *raw {
		if *fc != 3 && *fc != 4 {
			return fmt.Errorf("--fc %d: want 3 or 4", *fc)
		}
		if *count < 1 || *count > driver.MaxBlock || *addr < 0 || *addr+*count > 65536 {
			return fmt.Errorf("--addr %d --count %d: want 1..%d registers within 0..65535", *addr, *count, driver.MaxBlock)
		}
		data, err := bus.ReadRegisters(ctx, uint8(id), uint8(*fc), uint16(*addr), uint16(*count))
		if inUse := (*driver.InUseError)(nil); errors.As(err, &inUse) {
			return inUse
		}
		if err != nil {
			return err
		}
		return printRaw(stdout, *addr, data, *asJSON)
	}
	poller := meter.NewPoller(bus, uint8(id), p, meter.Ratios{PT: *pt, CT: *ct})
	if !*watch {
		r, err := poller.Poll(ctx, time.Now())
		if inUse := (*driver.InUseError)(nil); errors.As(err, &inUse) {
			return inUse
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return printReadingJSON(stdout, p, id, r)
		}
		return printReading(stdout, p, id, r)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for n := 0; ; n++ {
		r, err := poller.Poll(ctx, time.Now())
		var inUse *driver.InUseError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &inUse):
			return inUse
		case err != nil:
			fmt.Fprintf(stdout, "%s  error: %v\n", time.Now().Format("15:04:05.000"), err)
		case *asJSON:
			if err := printReadingJSON(stdout, p, id, r); err != nil {
				return err
			}
		default:
			if n%20 == 0 {
				fmt.Fprintln(stdout, "TIME          ENERGY_kWh    POWER_kW  VOLTAGE_V  CURRENT_A  STATUS        SOC")
			}
			soc, status := "-", "-" // a meter reports neither
			if r.HasSOC {
				soc = fmt.Sprintf("%d %%", r.SOC)
			}
			if r.HasStatus {
				status = r.Status.String()
			}
			fmt.Fprintf(stdout, "%s  %12s  %8s  %9s  %9s  %-12s  %s\n", r.Time.Format("15:04:05.000"), units.KWh(r.EnergyWh),
				units.KWh(r.PowerW), units.Decimal(r.VoltageDV, 10), units.Decimal(r.CurrentCA, 100), status, soc)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func printReadingJSON(w io.Writer, p *meter.Profile, id int, r meter.Reading) error {
	out := map[string]any{"profile": p.Name, "slave": id, "time": r.Time.UTC().Format(time.RFC3339Nano)}
	for _, n := range p.FieldNames() {
		out[meter.FieldKey(n)] = meter.FieldValue(r, n)
	}
	if r.Quantised() {
		out["energy_step_wh"] = r.EnergyStepWh()
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// printReading shows each field in engineering units.
func printReading(w io.Writer, p *meter.Profile, id int, r meter.Reading) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "profile\t%s\t(slave %d)\n", p.Name, id)
	for _, n := range p.FieldNames() {
		v, unit := engineering(r, n)
		if unit == "" {
			unit = p.UnitOf(n)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\n", n, v, unit)
	}
	if r.Quantised() {
		fmt.Fprintf(tw, "note\tenergy register resolves only %d Wh\t\n", r.EnergyStepWh())
	}
	return tw.Flush()
}

// engineering is a field as a technician reads it: kWh, kW, V, A, from
// the field table's divisor and unit (meter.FieldEngineering).
func engineering(r meter.Reading, name string) (any, string) {
	if v, div, unit, ok := meter.FieldEngineering(r, name); ok {
		return units.Decimal(v, div), unit
	}
	v := meter.FieldValue(r, name)
	if v == nil {
		return "-", ""
	}
	return v, ""
}

// printRaw dumps registers: each as u16 and i16, and each pair starting
// there as u32, i32 and f32 in both word orders (high word first: ABCD; low
// word first: CDAB), as meters differ.
func printRaw(w io.Writer, addr int, data []byte, asJSON bool) error {
	n := len(data) / 2
	word := func(i int) uint16 { return binary.BigEndian.Uint16(data[2*i:]) }
	type row struct {
		Addr uint16   `json:"addr"`
		Hex  string   `json:"hex"`
		U16  uint16   `json:"u16"`
		I16  int16    `json:"i16"`
		U32  *uint32  `json:"u32_abcd,omitempty"`
		I32  *int32   `json:"i32_abcd,omitempty"`
		F32  *float32 `json:"f32_abcd,omitempty"`
		U32s *uint32  `json:"u32_cdab,omitempty"`
		F32s *float32 `json:"f32_cdab,omitempty"`
	}
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{Addr: uint16(addr + i), Hex: fmt.Sprintf("%04X", word(i)), U16: word(i), I16: int16(word(i))}
		if i+1 < n {
			abcd, cdab := uint32(word(i))<<16|uint32(word(i+1)), uint32(word(i+1))<<16|uint32(word(i))
			i32, f, fs := int32(abcd), math.Float32frombits(abcd), math.Float32frombits(cdab)
			rows[i].U32, rows[i].I32, rows[i].F32, rows[i].U32s, rows[i].F32s = &abcd, &i32, &f, &cdab, &fs
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// the address in decimal and in hex: meter manuals use either
	fmt.Fprintln(tw, "ADDR\tADDR_HEX\tHEX\tU16\tI16\tU32 (ABCD)\tI32 (ABCD)\tF32 (ABCD)\tU32 (CDAB)\tF32 (CDAB)\t")
	for _, r := range rows {
		if r.U32 == nil {
			fmt.Fprintf(tw, "%d\t0x%04X\t%s\t%d\t%d\t\t\t\t\t\t\n", r.Addr, r.Addr, r.Hex, r.U16, r.I16)
			continue
		}
		fmt.Fprintf(tw, "%d\t0x%04X\t%s\t%d\t%d\t%d\t%d\t%g\t%d\t%g\t\n", r.Addr, r.Addr, r.Hex, r.U16, r.I16, *r.U32, *r.I32, *r.F32, *r.U32s, *r.F32s)
	}
	return tw.Flush()
}
