package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/driver"
	"pilebridge/internal/config"
	"pilebridge/meter"
)

// probeSetting is one way a line may be set up.
type probeSetting struct {
	Baud   int    `json:"baud,omitempty"`
	Parity string `json:"parity,omitempty"`
}

func (s probeSetting) String() string {
	if s.Baud == 0 {
		return "tcp"
	}
	return fmt.Sprintf("%d 8%s1", s.Baud, s.Parity)
}

// responder is a slave that answered, and the profiles whose registers it
// answers with plausible values.
type responder struct {
	Device   string   `json:"device"`
	Baud     int      `json:"baud,omitempty"`
	Parity   string   `json:"parity,omitempty"`
	Slave    int      `json:"slave"`
	Answer   string   `json:"answer"` // "registers" or the exception it gave
	Profiles []string `json:"profiles"`
}

// probeOpts is what scan --probe was asked.
type probeOpts struct {
	device   string
	settings []probeSetting
	slaves   []int
	profiles []*meter.Profile
	first    bool
	timeout  time.Duration // 0: from the baud
}

// cmdProbe tries every setting and slave on a line and reports who answers.
func cmdProbe(ctx context.Context, o probeOpts, asJSON bool, stdout, stderr io.Writer) error {
	total := len(o.settings) * len(o.slaves)
	started, done := time.Now(), 0
	progress := isTerminal(stderr)
	var found []responder
	for i, set := range o.settings {
		if !progress {
			// not a terminal (a log, ssh without -t): a line per setting, so
			// a long probe is never silent
			fmt.Fprintf(stderr, "probe: trying %s (%d of %d settings), %d slave ids; %d responder(s) so far\n", set, i+1, len(o.settings), len(o.slaves), len(found))
		}
		answered := 0 // in this setting so far
		rs, err := probeSettingOnce(ctx, o, set, func(slave int, ok bool) {
			done++
			if ok {
				answered++
			}
			if progress {
				left := time.Duration(float64(time.Since(started)) / float64(done) * float64(total-done))
				bar := strings.Repeat("#", 20*done/total) + strings.Repeat(" ", 20-20*done/total)
				fmt.Fprintf(stderr, "\r[%s] %3d%% trying %-10s slave %3d · %d found · %s left ", bar, 100*done/total, set, slave, len(found)+answered, left.Round(time.Second))
			}
		})
		if err != nil {
			return err
		}
		found = append(found, rs...)
		if o.first && len(rs) > 0 {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if progress {
		fmt.Fprint(stderr, "\r"+strings.Repeat(" ", 80)+"\r")
	}
	if asJSON {
		if found == nil {
			found = []responder{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(found)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tLINE\tSLAVE\tANSWER\tPROFILES THAT READ PLAUSIBLY")
	for _, r := range found {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Device, probeSetting{r.Baud, r.Parity}, r.Slave, r.Answer, strings.Join(r.Profiles, ", "))
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%d responder(s) in %s (%d of %d probes tried: %d settings × %d slave ids)\n", len(found), time.Since(started).Round(time.Second), done, total, len(o.settings), len(o.slaves))
	return nil
}

// probeTimeout is a few times the line time of a one-register read and
// its reply, plus the slave's turnaround and a USB adapter's latency.
func probeTimeout(baud int) time.Duration {
	if baud == 0 {
		return 300 * time.Millisecond
	}
	line := time.Duration(15*11) * time.Second / time.Duration(baud)
	return 3*line + 25*time.Millisecond
}

func probeSettingOnce(ctx context.Context, o probeOpts, set probeSetting, step func(slave int, answered bool)) ([]responder, error) {
	timeout := o.timeout
	if timeout == 0 {
		timeout = probeTimeout(set.Baud)
	}
	baud := set.Baud
	if baud == 0 {
		baud = 9600 // unused on TCP
	}
	bus, err := driver.New(driver.Config{
		Name: "probe", Device: o.device,
		Serial:  driver.SerialParams{Baud: baud, DataBits: 8, Parity: set.Parity, StopBits: 1, LowLatency: driver.LowLatencyAuto},
		Default: driver.SlavePolicy{Timeout: timeout}, DeadAfter: 1 << 30, // every id once: no backoff
		DeadBase: config.DeadBase, DeadMax: config.DeadMax,
	}, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-bus.Done() }()
	go bus.Run(ctx)
	var out []responder
	for _, id := range o.slaves {
		if ctx.Err() != nil {
			break
		}
		_, err := bus.ReadRegisters(ctx, uint8(id), 3, 0, 1)
		var ex *driver.ExceptionError
		var inUse *driver.InUseError
		answer := ""
		switch {
		case errors.As(err, &inUse):
			return nil, inUse // another master holds the line: probing would collide with it
		case err == nil:
			answer = "answers: register 0 read"
		case errors.As(err, &ex) && (ex.Code == 10 || ex.Code == 11):
			step(id, false)
			continue // a gateway saying nobody is there (path unavailable, target failed to respond)
		case errors.As(err, &ex):
			answer = answerWords(ex.Code) // a device that has no register 0 is still there
		default:
			step(id, false)
			continue // silence, or noise at the wrong setting
		}
		step(id, true)
		r := responder{Device: o.device, Baud: set.Baud, Parity: set.Parity, Slave: id, Answer: answer, Profiles: []string{}}
		for _, p := range o.profiles {
			rd, err := meter.NewPoller(bus, uint8(id), p, meter.Ratios{}).Poll(ctx, time.Now())
			if err == nil && p.Plausible(rd) {
				r.Profiles = append(r.Profiles, p.Name)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// parseIDs reads "1-10,17,200-247".
func parseIDs(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < driver.MinSlave || b > driver.MaxSlave || a > b {
			return nil, fmt.Errorf("%q: want slave ids %d..%d like 1-10,17", part, driver.MinSlave, driver.MaxSlave)
		}
		for id := a; id <= b; id++ {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// probeSettings is every baud × parity asked for; one "tcp" setting for a
// gateway, which keeps the line's own settings.
func probeSettings(device, bauds, parities string) ([]probeSetting, error) {
	if strings.Contains(device, "://") {
		return []probeSetting{{}}, nil
	}
	var out []probeSetting
	for _, b := range strings.Split(bauds, ",") {
		baud, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil || baud < driver.MinBaud || baud > driver.MaxBaud {
			return nil, fmt.Errorf("--bauds: %q: want rates like 9600,19200", b)
		}
		for _, p := range strings.Split(parities, ",") {
			p = strings.ToUpper(strings.TrimSpace(p))
			if p != "N" && p != "E" && p != "O" {
				return nil, fmt.Errorf("--parity: %q: want N, E or O", p)
			}
			out = append(out, probeSetting{Baud: baud, Parity: p})
		}
	}
	return out, nil
}

// answerWords says in plain words what an exception to the probe's read of
// register 0 means: the device is there and talking.
func answerWords(code byte) string {
	switch code {
	case 1:
		return "answers (exception 1: it does not take function 3; try --fc 4 with read --raw)"
	case 2:
		return "answers (exception 2: it has no register 0, which is normal; its profile reads its own registers)"
	case 3:
		return "answers (exception 3: it refused the read's size)"
	case 4, 6:
		return fmt.Sprintf("answers (exception %d: it is busy or failing; try again)", code)
	}
	return fmt.Sprintf("answers (exception %d)", code)
}
