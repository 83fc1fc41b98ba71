// Command pilebridge polls EV charging piles over Modbus and reports their
// sessions to the P云 platform.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	// the time-zone database in the binary: a board's root may have no
	// /usr/share/zoneinfo, and tariff.time_zone must load all the same
	_ "time/tzdata"

	"github.com/rs/zerolog"

	"pilebridge/internal/config"
	"pilebridge/internal/dbfile"
)

var version = "dev"

const usage = `pilebridge: EV charging pile ↔ P云 bridge

usage:
  pilebridge [run] --config FILE        run the daemon
  pilebridge check --config FILE        validate the config and profiles, then exit
  pilebridge scan                       list serial ports (USB ids, by-id paths); opens none
  pilebridge scan --probe --device DEV [--bauds ..] [--parity N,E] [--slaves 1-247] [--first]
                                        find the devices on a line: baud, parity, slave ids, profiles
  pilebridge read --device DEV --slave N --profile NAME [--watch] [--baud B --parity P --stop-bits S] [--json]
                                        one device's fields in engineering units, once or continuously
  pilebridge read --device DEV --slave N --raw --addr A --count N [--fc 3|4]
                                        raw registers as u16, i16, u32, i32 and f32, for a new profile
  pilebridge profiles [--dir DIR]       list meter and pile profiles and where each came from
  pilebridge outbox list [--all] --config FILE
  pilebridge outbox retry ORDER|--parked --config FILE
  pilebridge sessions [--since DATE] [--until DATE] [--csv|--json] [--order ORDER] --config FILE
                                        closed sessions' bills and their delivery, for reconciliation
  pilebridge plate PORT PLATE --config FILE
                                        the attendant's read of the car's plate at a port
  pilebridge db salvage|reset|backup --config FILE
                                        a damaged or lost database: recover what can be read, fill in
                                        from data_dir/backup; start empty on purpose; copy it now
  pilebridge version | --version

Each command's --help describes its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help"):
		cmd = "help"
	case len(args) > 0 && (args[0] == "--version" || args[0] == "-version"):
		cmd = "version"
	case len(args) > 0 && args[0] != "" && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, args, stdout, stderr)
	case "check":
		err = cmdCheck(args, stdout)
	case "scan":
		err = cmdScan(ctx, args, stdout, stderr)
	case "read":
		err = cmdRead(ctx, args, stdout, stderr)
	case "profiles":
		err = cmdProfiles(args, stdout)
	case "outbox":
		err = cmdOutbox(args, stdout)
	case "sessions":
		err = cmdSessions(args, stdout)
	case "plate":
		err = cmdPlate(args, stdout)
	case "db":
		err = cmdDB(args, stdout)
	case "version":
		fmt.Fprintln(stdout, "pilebridge", version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "pilebridge: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // --help: the flag set printed the command's usage
		}
		fmt.Fprintln(stderr, "pilebridge:", err)
		var ce config.Errors
		var one *config.Error
		if errors.As(err, &ce) || errors.As(err, &one) {
			return exConfig
		}
		if errors.Is(err, dbfile.ErrUnusable) {
			return dbfile.ExitUnusable
		}
		return 1
	}
	return 0
}

// exConfig is sysexits' EX_CONFIG: the unit's RestartPreventExitStatus
// keeps systemd from restarting a daemon whose config is wrong.
const exConfig = 78

// newLogger writes JSON, or readable lines when stderr is a terminal.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log.level %q: %w", level, err)
	}
	if format == "console" || (format == "auto" && isTerminal(w)) {
		// colours only on a terminal: a redirected log gets plain text
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "2006-01-02 15:04:05.000", NoColor: !isTerminal(w)}
	}
	return zerolog.New(w).Level(lvl).Hook(msTime{}), nil
}

// msTime stamps each line with UTC milliseconds, as the platform's times
// are written (zerolog's own timestamp has whole seconds unless a package
// global is changed).
type msTime struct{}

func (msTime) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("time", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
