package station

import (
	"fmt"
	"strings"
	"time"

	"pilebridge/driver"
	"pilebridge/internal/config"
	"pilebridge/meter"
)

// Budget is a serial line's load: the line time one poll round of all its
// ports takes (every block of every port's read plan, driver.ReadTime),
// against the shortest poll interval among them.
type Budget struct {
	Bus      string
	Ports    int
	Baud     int
	Round    time.Duration
	Interval time.Duration // the shortest poll_interval on the line
}

// Share is the round's share of the poll interval (1 = the line is full).
func (b Budget) Share() float64 { return b.Round.Seconds() / b.Interval.Seconds() }

// LineBudgets computes each serial bus's budget from the profiles' read
// plans. TCP gateways are left out: their own line's baud is not known here.
func LineBudgets(cfg *config.Config, reg *meter.Registry) []Budget {
	var out []Budget
	for _, b := range cfg.Buses {
		if isNetwork(b.Device) {
			continue
		}
		bd := Budget{Bus: b.Name, Baud: b.Baud}
		for _, p := range cfg.Piles {
			if p.Bus != b.Name {
				continue
			}
			for _, pt := range p.Ports {
				prof, err := reg.Get(pt.Profile)
				if err != nil {
					continue
				}
				bd.Ports++
				for _, blk := range prof.Blocks() {
					bd.Round += driver.ReadTime(b.Baud, blk.Count)
				}
				if bd.Interval == 0 || pt.PollInterval < bd.Interval {
					bd.Interval = pt.PollInterval
				}
			}
		}
		if bd.Ports > 0 {
			out = append(out, bd)
		}
	}
	return out
}

// budgetWarnings says where a line cannot be read as configured: a round
// longer than the poll interval, and a meter-only port whose start_for or
// stop_for window holds fewer than two rounds.
func budgetWarnings(cfg *config.Config, budgets []Budget) []string {
	var out []string
	for _, bd := range budgets {
		if bd.Round > bd.Interval {
			out = append(out, fmt.Sprintf("%s: %d ports need %s per round at %d baud; poll_interval %s: each port is read every %s — raise the baud rate, lengthen poll_interval, or split the line",
				bd.Bus, bd.Ports, seconds(bd.Round), bd.Baud, bd.Interval, seconds(bd.Round)))
		}
		every := max(bd.Round, bd.Interval)
		for i, p := range cfg.Piles {
			if p.Bus != bd.Bus {
				continue
			}
			for j, pt := range p.Ports {
				for _, win := range []struct {
					key string
					w   time.Duration
				}{{"start_for", pt.MeterOnly.StartFor}, {"stop_for", pt.MeterOnly.StopFor}} {
					key, w := win.key, win.w
					if w > 0 && w < 2*every {
						out = append(out, fmt.Sprintf("piles[%d].ports[%d].meter_only.%s: %s holds fewer than two readings (%s apart on %s): a session edge may be missed or late", i, j, key, w, seconds(every), bd.Bus))
					}
				}
			}
		}
	}
	return out
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func isNetwork(device string) bool {
	return strings.HasPrefix(device, "tcp://") || strings.HasPrefix(device, "rtuovertcp://")
}
