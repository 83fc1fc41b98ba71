package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/simulator"
)

// cmdFaultLine puts a failing line in front of a simulated one (or any
// Modbus TCP or RTU-over-TCP device): point the bridge's bus at --listen
// instead of the device, and try a config against a line that comes and
// goes, cuts connections, delays, corrupts, answers for another slave or
// stalls.
func cmdFaultLine(ctx context.Context, args []string, log zerolog.Logger) error {
	fs := flag.NewFlagSet("faultline", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:1502", "address the bridge dials instead of the device")
	to := fs.String("to", "", "the device or simulated line (host:port), e.g. pilesim serve --rtutcp's")
	mbap := fs.Bool("mbap", false, "the device speaks Modbus TCP (tcp://); else RTU frames over TCP (rtuovertcp://)")
	fault := fs.String("fault", "", "one fault for good: clean, down, cut, delay, corrupt, wrong-slave, stall (default: random spells)")
	faults := fs.String("faults", "clean,down,cut,delay,corrupt,wrong-slave,stall", "the faults random spells choose from")
	minSpell := fs.Duration("min-spell", time.Second, "shortest random spell")
	maxSpell := fs.Duration("max-spell", time.Minute, "longest random spell")
	cutAfter := fs.Int("cut-after", 1, "cut: close the connection after this many replies")
	delay := fs.Duration("delay", 300*time.Millisecond, "delay: hold each reply this long")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random spells' seed (printed: repeat a run with it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return fmt.Errorf("faultline: --to is required (the device's host:port)")
	}
	if *minSpell <= 0 || *maxSpell < *minSpell {
		return fmt.Errorf("faultline: --min-spell %s and --max-spell %s: want 0 < min ≤ max", *minSpell, *maxSpell)
	}
	list, err := simulator.ParseLineFaults(*faults)
	if err != nil {
		return fmt.Errorf("faultline: --faults: %w", err)
	}
	fl := simulator.NewFaultLine(*to, *mbap, *seed, log)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	go fl.Serve(ln)
	if *fault != "" {
		one, err := simulator.ParseLineFaults(*fault)
		if err != nil || len(one) != 1 {
			return fmt.Errorf("faultline: --fault %q: want one of %v", *fault, simulator.AllLineFaults)
		}
		fl.Set(one[0], *cutAfter, *delay)
		log.Info().Str("listen", ln.Addr().String()).Str("to", *to).Str("fault", string(one[0])).Msg("fault line")
		<-ctx.Done()
	} else {
		log.Info().Str("listen", ln.Addr().String()).Str("to", *to).Uint64("seed", *seed).Dur("min_spell", *minSpell).Dur("max_spell", *maxSpell).Msg("fault line: random spells")
		fl.Chaos(ctx, list, *minSpell, *maxSpell, func(s simulator.Spell) {
			log.Info().Str("fault", string(s.Fault)).Dur("for", s.For).Int("cut_after", s.CutAfter).Dur("delay", s.Delay).Msg("spell")
		})
	}
	replies, spoiled := fl.Counts()
	log.Info().Int64("replies", replies).Int64("spoiled", spoiled).Msg("fault line closed")
	return ctx.Err()
}
