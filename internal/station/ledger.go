package station

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// serveSessions is GET /sessions?since=&until= (RFC 3339).
func (a *Station) serveSessions(w http.ResponseWriter, r *http.Request) {
	var since, until time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				http.Error(w, fmt.Sprintf("%s=%q: want an RFC 3339 time", p.name, v), http.StatusBadRequest)
				return
			}
			*p.t = t
		}
	}
	limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	entries, next, err := a.outbox.LedgerPage(since, until, r.URL.Query().Get("after"), limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !authorized(r) {
		for i := range entries {
			entries[i].Record = entries[i].Record.Masked()
		}
	}
	if next != "" {
		setNext(w, r, next)
	}
	writeJSON(w, entries)
}

// pruneLedger drops delivered bills older than history_days and blanks the
// personal data of those older than pii_days, a minute after the start and
// every six hours, in small transactions beside the poll loop.
func (a *Station) pruneLedger(ctx context.Context) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().AddDate(0, 0, -a.cfg.HistoryDays)
		n, err := a.outbox.PruneLedger(ctx, cutoff)
		if err != nil && ctx.Err() == nil {
			a.log.Error().Err(err).Msg("ledger prune")
		} else if n > 0 {
			a.log.Info().Int("pruned", n).Int("history_days", a.cfg.HistoryDays).Msg("ledger pruned")
		}
		cutoff = time.Now().AddDate(0, 0, -a.cfg.PIIDays)
		if n, err := a.outbox.BlankPII(ctx, cutoff); err != nil && ctx.Err() == nil {
			a.log.Error().Err(err).Msg("personal data retention")
		} else if n > 0 {
			a.log.Info().Int("blanked", n).Int("pii_days", a.cfg.PIIDays).Msg("VIN, plate and mobile blanked on delivered bills")
		}
		t.Reset(6 * time.Hour)
	}
}
