// Command pilesim is the other side of pilebridge's wires: simulated piles
// answering Modbus on a pseudo-terminal or TCP, and a P云 platform stand-in.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/cli"
	"pilebridge/meter"
	"pilebridge/simulator"
)

const usage = `pilesim: simulated charging piles and P云 platform stand-in

usage (each command's --help describes its flags):
  pilesim serve [--link PATH] [--tcp ADDR] [--rtutcp ADDR] [--profile NAME] [--slaves 1,2] [script flags]
  pilesim platform --listen ADDR --app-id ID --app-secret SECRET [--log FILE]
  pilesim demo --bridge BIN --config FILE     stand-in + simulator + bridge, one session, then exit
  pilesim camera --push URL --plate P [--maker alarminfoplate|hikvision|dahua] [--serial S]
                 [--channel N] [--every D] [--base64] [--gbk]
                                              a bay's LPR camera pushing its read
  pilesim faultline --to ADDR [--listen ADDR] [--mbap] [--fault F | --faults F,..] [--seed N]
                                              a failing line in front of a device: flapping, cut
                                              connections, delays, corruption, wrong slave, stalls
  pilesim scale --bridge BIN [--lines 16] [--slaves 16] [--idle 45s] [--charge 45s]
                                              the bridge at station size: CPU, RSS, device bytes, bills
`

// version is set at build time (make: -X main.version), the same as
// pilebridge's and the packages'.
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// colours only on a terminal: a log file gets plain text
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !isTTY(stderr)}).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help"):
		cmd = "help"
	case len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version"):
		fmt.Fprintln(stdout, "pilesim", version)
		return 0
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, args, log)
	case "platform":
		err = cmdPlatform(ctx, args, log)
	case "demo":
		err = cmdDemo(ctx, args, stdout, log)
	case "camera":
		err = cmdCamera(ctx, args, stdout)
	case "scale":
		err = cmdScale(ctx, args, stdout, log)
	case "faultline":
		err = cmdFaultLine(ctx, args, log)
	case "floor": // run by scale
		err = cmdFloor(ctx, args)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "pilesim:", err)
		return 1
	}
	return 0
}

// serveOpts are the simulator's settings.
type serveOpts struct {
	link, tcp, rtutcp, profile, profilesDir, slaves, faults string
	baud                                                    int
	energy                                                  int64
	script                                                  simulator.Script
	exitAfter                                               bool
}

func serveFlags(fs *flag.FlagSet, o *serveOpts) {
	fs.StringVar(&o.link, "link", "", "symlink to the pty's slave end (the bridge's device)")
	fs.StringVar(&o.tcp, "tcp", "", "also serve Modbus TCP on this address")
	fs.StringVar(&o.rtutcp, "rtutcp", "", "also serve RTU-over-TCP on this address")
	fs.StringVar(&o.profile, "profile", "ref-ac", "profile of the simulated device")
	fs.StringVar(&o.profilesDir, "profiles-dir", "", "user profiles directory")
	fs.StringVar(&o.slaves, "slaves", "1", "slave ids, comma separated: one device each")
	fs.StringVar(&o.faults, "fault", "", "inject: slave:kind[:count[:delay|code]], comma separated (kinds: noanswer late badcrc truncated wrongid garbage exception hangup)")
	fs.IntVar(&o.baud, "baud", 0, "pace replies like a line at this baud (0: instant)")
	fs.Int64Var(&o.energy, "energy", 1234567, "meter's lifetime energy at start, Wh")
	s := &o.script
	fs.DurationVar(&s.Idle, "idle", 2*time.Second, "idle before plug-in")
	fs.DurationVar(&s.Plugged, "plugged", 2*time.Second, "plugged before start")
	fs.DurationVar(&s.Starting, "starting", 2*time.Second, "starting before charging")
	fs.DurationVar(&s.Charge, "charge", 30*time.Second, "charging time")
	fs.DurationVar(&s.Finished, "finished", 3*time.Second, "finished before unplug")
	fs.Int64Var(&s.PowerW, "power", 7000, "charging power, W")
	fs.Int64Var(&s.StopCode, "stop-code", 1, "stop_reason register at the end (1 SOC已充满, 2 用户停止, 3 急停)")
	fs.StringVar(&s.VIN, "vin", "LSTOP103212132001", "VIN the pile reports")
	fs.IntVar(&s.SOC, "soc", -1, "starting SOC (-1: not reported)")
	fs.BoolVar(&s.FailStart, "fail-start", false, "the start fails instead of charging")
	fs.BoolVar(&s.Repeat, "repeat", false, "repeat the session forever")
	fs.BoolVar(&o.exitAfter, "exit", false, "exit when the script ends")
}

func parseFault(spec string) (uint8, simulator.Fault, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 {
		return 0, simulator.Fault{}, fmt.Errorf("fault %q: want slave:kind[:count[:delay|code]]", spec)
	}
	id, err := strconv.Atoi(parts[0])
	if err != nil || id < 1 || id > 247 {
		return 0, simulator.Fault{}, fmt.Errorf("fault %q: bad slave id", spec)
	}
	f := simulator.Fault{Kind: simulator.FaultKind(parts[1]), Delay: time.Second, Code: 2}
	if len(parts) > 2 {
		if f.Count, err = strconv.Atoi(parts[2]); err != nil {
			return 0, f, fmt.Errorf("fault %q: bad count", spec)
		}
	}
	if len(parts) > 3 {
		if f.Kind == simulator.FaultException {
			c, err := strconv.ParseUint(parts[3], 0, 8)
			if err != nil {
				return 0, f, fmt.Errorf("fault %q: bad exception code", spec)
			}
			f.Code = byte(c)
		} else if f.Delay, err = time.ParseDuration(parts[3]); err != nil {
			return 0, f, fmt.Errorf("fault %q: bad delay", spec)
		}
	}
	return uint8(id), f, nil
}

// startSim brings up the simulated devices; it returns when they serve.
func startSim(ctx context.Context, o serveOpts, log zerolog.Logger) (piles []*simulator.Pile, done <-chan error, err error) {
	reg, err := meter.LoadRegistry(o.profilesDir)
	if err != nil {
		return nil, nil, err
	}
	prof, err := reg.Get(o.profile)
	if err != nil {
		return nil, nil, err
	}
	srv := simulator.NewServer(log)
	srv.Baud = o.baud
	for _, s := range strings.Split(o.slaves, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || id < 1 || id > 247 {
			return nil, nil, fmt.Errorf("--slaves: %q is not a slave id", s)
		}
		sl := srv.AddSlave(uint8(id))
		p, err := simulator.NewPile(prof, meter.Ratios{}, sl.Bank, o.energy)
		if err != nil {
			return nil, nil, err
		}
		piles = append(piles, p)
	}
	if o.faults != "" {
		for _, spec := range strings.Split(o.faults, ",") {
			id, f, err := parseFault(spec)
			if err != nil {
				return nil, nil, err
			}
			if sl := srv.Slave(id); sl != nil {
				sl.Inject(f)
			}
		}
	}
	errs := make(chan error, 4)
	if o.link != "" {
		line, err := simulator.OpenPty(o.link)
		if err != nil {
			return nil, nil, err
		}
		go func() { <-ctx.Done(); line.Close() }()
		go func() { errs <- srv.AttachPty(line) }()
		log.Info().Str("link", o.link).Str("pty", line.SlavePath).Str("profile", prof.Name).Msg("serving RTU on pty")
	}
	for _, l := range []struct {
		addr string
		rtu  bool
	}{{o.tcp, false}, {o.rtutcp, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return nil, nil, err
		}
		go func() { <-ctx.Done(); ln.Close() }()
		go func() { errs <- srv.ServeTCP(ln, l.rtu) }()
		log.Info().Str("addr", l.addr).Bool("rtu_over_tcp", l.rtu).Msg("serving TCP")
	}
	scriptDone := make(chan error, 1)
	go func() {
		for _, p := range piles {
			go func() { scriptDone <- p.Run(ctx, o.script) }()
		}
	}()
	merged := make(chan error, 1)
	go func() {
		select {
		case err := <-errs:
			merged <- err
		case err := <-scriptDone:
			merged <- err
		}
	}()
	return piles, merged, nil
}

func cmdServe(ctx context.Context, args []string, log zerolog.Logger) error {
	fs := cli.Flags("serve", "pilesim [serve] [--link PATH] [--tcp ADDR] [--rtutcp ADDR] [--profile NAME] [--slaves 1,2] [script flags]",
		"Simulated piles or meters answering Modbus on a pseudo-terminal (--link) or TCP, playing a charging script, with faults on demand.", os.Stdout)
	var o serveOpts
	serveFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.link == "" && o.tcp == "" && o.rtutcp == "" {
		return fmt.Errorf("serve: give --link, --tcp or --rtutcp")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, done, err := startSim(ctx, o, log)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if err == nil && !o.exitAfter {
				continue // script over: keep the idle pile answering
			}
			return err
		}
	}
}

func cmdPlatform(ctx context.Context, args []string, log zerolog.Logger) error {
	fs := cli.Flags("platform", "pilesim platform [--listen ADDR] [--app-id ID] [--app-secret SECRET] [--log FILE]",
		"The P云 platform stand-in: checks signatures and fields as the platform does and answers like it.", os.Stdout)
	listen := fs.String("listen", "127.0.0.1:18080", "address")
	appID := fs.String("app-id", "op_demo", "accepted app_id")
	secret := fs.String("app-secret", "demo-secret", "its secret")
	logPath := fs.String("log", "", "append accepted requests as JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := simulator.NewPlatform(*appID, *secret, *logPath)
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info().Str("listen", ln.Addr().String()).Str("app_id", *appID).Msg("platform stand-in up")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
