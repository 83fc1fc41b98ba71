package main

import (
	"fmt"
	"io"
	"strings"

	"pilebridge/internal/config"
	"pilebridge/internal/station"
)

// cmdPlate gives an open session (or one about to open) its plate, as the
// attendant reads it: through the running daemon, with its token.
func cmdPlate(args []string, stdout io.Writer) error {
	fs, path := configFlag("plate", "pilebridge plate PORT PLATE --config FILE",
		"Tells the running daemon the plate of the car at PORT (device_no/port_no), as the attendant reads it: it goes on the port's session and its bill, and wins over a camera's read.", stdout)
	// PORT PLATE before the flags, as outbox retry takes its ORDER, or after
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	if len(pos) != 2 {
		return fmt.Errorf("plate: want PORT PLATE (for example TEST250911100001/1 川A12345)")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	c, err := station.NewClient(cfg)
	if err != nil {
		return err
	}
	got, err := c.Plate(pos[0], pos[1])
	if err != nil {
		return fmt.Errorf("plate: %w", err)
	}
	fmt.Fprintf(stdout, "port %s: plate %s (attendant)\n", got.Port, got.Plate)
	return nil
}
