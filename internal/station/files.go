package station

import (
	"context"
	"time"

	"pilebridge/internal/faillog"
)

// filesEvery is how often the database path is compared with the open
// database: a stat, nothing written while all is well.
const filesEvery = 5 * time.Second

// watchFiles checks that the database path still reaches the database the
// daemon writes to (dbfile.Guard): a data directory deleted under it, or a
// file renamed over it, is repaired from the open file, said once and held
// as a health reason until a restart. A last check at the stop refreshes
// the copy with the final commits.
func (a *Station) watchFiles(ctx context.Context) {
	fail := faillog.New(a.log, "the database path could not be repaired", 0)
	t := time.NewTicker(filesEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.checkFiles(time.Now(), fail)
	}
}

func (a *Station) checkFiles(now time.Time, fail *faillog.Failure) {
	pr, err := a.guard.Check(now)
	a.filesMu.Lock()
	first := a.files.Since.IsZero() && !pr.Since.IsZero()
	a.files = pr
	a.filesMu.Unlock()
	if first {
		a.log.Error().Time("since", pr.Since).Msg(pr.What)
	}
	if err != nil {
		fail.Fail(now, err, nil)
	} else {
		fail.OK(now)
	}
}

// filesProblem is the lasting problem watchFiles found, if any.
func (a *Station) filesProblem() (since time.Time, what string) {
	a.filesMu.Lock()
	defer a.filesMu.Unlock()
	return a.files.Since, a.files.What
}
