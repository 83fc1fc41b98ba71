package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	u, err := daemonURL(cfg, "/plates/attendant")
	if err != nil {
		return err
	}
	tok, err := station.ReadToken(cfg)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(station.PlateInput{Port: pos[0], Plate: pos[1]})
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running daemon: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("plate: the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	var got station.PlateInput
	if err := json.Unmarshal(answer, &got); err != nil {
		return fmt.Errorf("plate: the daemon's answer: %w", err)
	}
	fmt.Fprintf(stdout, "port %s: plate %s (attendant)\n", got.Port, got.Plate)
	return nil
}
