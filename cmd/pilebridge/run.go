package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"pilebridge/internal/cli"
	"pilebridge/internal/station"
)

func configFlag(name, synopsis, about string, out io.Writer) (*flag.FlagSet, *string) {
	fs := cli.Flags(name, synopsis, about, out)
	path := fs.String("config", "/etc/pilebridge/pilebridge.yaml", "config file")
	return fs, path
}

func cmdCheck(args []string, stdout io.Writer) error {
	fs, path := configFlag("check", "pilebridge check --config FILE",
		"Validates the config and every profile it uses exactly as the daemon does, then exits: 0 when fine, 78 naming every mistake by key.", stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, reg, err := station.Load(*path)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range cfg.Piles {
		n += len(p.Ports)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	for _, b := range station.LineBudgets(cfg, reg) {
		fmt.Fprintf(stdout, "line %s: %d ports, %.2f s per poll round at %d baud: %.0f %% of poll_interval %s\n",
			b.Bus, b.Ports, b.Round.Seconds(), b.Baud, 100*b.Share(), b.Interval)
	}
	fmt.Fprintf(stdout, "config ok: %d buses, %d piles, %d ports, %d profiles\n", len(cfg.Buses), len(cfg.Piles), n, len(reg.Names()))
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := configFlag("run", "pilebridge [run] --config FILE",
		"Runs the daemon: polls every port, keeps sessions, uploads records to the platform.", stdout)
	pprofAddr := fs.String("pprof", "", "serve Go profiles at this loopback `address` under /debug/pprof/ (for benchmarks and debugging)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tuneRuntime(*pprofAddr != "")
	cfg, reg, err := station.Load(*path)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn().Str("config", *path).Msg(w)
	}
	st, err := station.Build(cfg, reg, log, station.Options{Version: version})
	if err != nil {
		return err
	}
	defer st.Close()
	if *pprofAddr != "" {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if err := servePprof(ctx, *pprofAddr, log); err != nil {
			return err
		}
	}
	return st.Run(ctx)
}
