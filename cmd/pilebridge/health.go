package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"pilebridge/uploader"
)

// storeStuckAfter: a commit still waiting for its fsync this long means the
// storage has hung (a dying SD card); the watchdog stops.
const storeStuckAfter = 30 * time.Second

// babbleRecent: a babble this recent is a health reason.
const babbleRecent = time.Minute

// alive is the watchdog's test: every loop that must keep running can. A
// bus hung inside one exchange, or a commit hung in its fsync, stops the
// pings, and systemd restarts the daemon.
func (a *app) alive(now time.Time) error {
	var stuck []string
	for _, name := range a.busNames() {
		if d, s := a.buses[name].Stuck(); s {
			stuck = append(stuck, fmt.Sprintf("bus %s: one exchange running for %s", name, d.Round(time.Second)))
		}
	}
	if t := a.store.Health().OldestInflight; !t.IsZero() && now.Sub(t) > storeStuckAfter {
		stuck = append(stuck, fmt.Sprintf("store: a commit waiting for its fsync for %s", now.Sub(t).Round(time.Second)))
	}
	if len(stuck) > 0 {
		return fmt.Errorf("%s", strings.Join(stuck, "; "))
	}
	return nil
}

// unhealthy lists what /healthz reports: what alive reports, a bus with no
// good exchange for offline_after, a failed last commit, a bill waiting for
// delivery longer than platform.max_bill_age, bills parked by the platform.
func (a *app) unhealthy(now time.Time) []string {
	counts, err := a.outbox.Counts()
	return a.reasons(now, counts, err)
}

// reasons is unhealthy on outbox counts already read (or the error reading
// them).
func (a *app) reasons(now time.Time, counts uploader.Counts, countsErr error) []string {
	var out []string
	if err := a.alive(now); err != nil {
		out = append(out, err.Error())
	}
	silence := a.cfg.Session.OfflineAfter
	for _, name := range a.busNames() {
		if now.Sub(a.started) < silence {
			break // a fresh start: give the lines their first polls
		}
		if last := a.buses[name].LastGood(); now.Sub(last) > silence {
			if last.IsZero() {
				out = append(out, fmt.Sprintf("bus %s: no good exchange since the start", name))
			} else {
				out = append(out, fmt.Sprintf("bus %s: no good exchange for %s", name, now.Sub(last).Round(time.Second)))
			}
		}
	}
	for _, name := range a.busNames() {
		if ls := a.buses[name].LineStats(); !ls.LastBabble.IsZero() && now.Sub(ls.LastBabble) < babbleRecent {
			out = append(out, fmt.Sprintf("bus %s: the line babbles (does not fall silent; %d time(s), last %s ago): a device or converter keeps sending", name, ls.Babbles, now.Sub(ls.LastBabble).Round(time.Second)))
		}
	}
	if h := a.store.Health(); h.LastErr != nil {
		out = append(out, fmt.Sprintf("store: the last commit failed: %v", h.LastErr))
		if h.Unsaved > 0 {
			out = append(out, fmt.Sprintf("store: cannot write for %s: the sessions of %d port(s) are held in memory only; a restart now would lose what they gained since", now.Sub(h.UnsavedSince).Round(time.Second), h.Unsaved))
		}
	}
	if t := a.sender.Unrecorded(); !t.IsZero() {
		out = append(out, fmt.Sprintf("store: cannot record deliveries for %s: the platform's answers wait in memory and nothing more is sent", now.Sub(t).Round(time.Second)))
	}
	switch {
	case countsErr != nil:
		out = append(out, fmt.Sprintf("outbox: %v", countsErr))
	default:
		if t := counts.OldestPendingBill; !t.IsZero() && now.Sub(t) > a.cfg.Platform.MaxBillAge {
			out = append(out, fmt.Sprintf("outbox: a bill has waited %s for the platform (max_bill_age %s)", now.Sub(t).Round(time.Second), a.cfg.Platform.MaxBillAge))
		}
		if counts.Parked > 0 {
			out = append(out, fmt.Sprintf("outbox: %d record(s) parked by the platform; see `pilebridge outbox list`", counts.Parked))
		}
	}
	return out
}

func (a *app) busNames() []string {
	names := make([]string, 0, len(a.buses))
	for n := range a.buses {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// serveHealth is GET /healthz: 200 "ok", or 503 with one reason a line.
func (a *app) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	reasons := a.unhealthy(time.Now())
	if len(reasons) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, s := range reasons {
		fmt.Fprintln(w, s)
	}
}

// notifier speaks systemd's notify protocol (NOTIFY_SOCKET); without the
// variable every call is a no-op.
type notifier func(state string) error

func systemdNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// watchdog pings systemd at a third of WatchdogSec while alive holds. It
// returns at once when the unit has no watchdog.
func (a *app) watchdog(ctx context.Context, notify notifier, alive func(time.Time) error) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		a.log.Error().Err(err).Msg("systemd watchdog settings")
		return
	}
	if every <= 0 {
		return
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	a.log.Info().Int64("watchdog_ms", every.Milliseconds()).Msg("systemd watchdog on")
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := alive(time.Now()); err != nil {
			if !failing {
				a.log.Error().Err(err).Msg("watchdog pings stopped: systemd will restart the daemon")
			}
			failing = true
			continue
		}
		if failing {
			a.log.Info().Msg("watchdog pings resumed")
		}
		failing = false
		if err := notify(daemon.SdNotifyWatchdog); err != nil {
			a.log.Warn().Err(err).Msg("systemd watchdog ping")
		}
	}
}
