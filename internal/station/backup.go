package station

import (
	"context"
	"time"

	"pilebridge/internal/dbfile"
	"pilebridge/internal/faillog"
)

// backups copies the database to data_dir/backup every backup_interval
// (at once when the newest copy is older than that), while commits go on.
func (a *Station) backups(ctx context.Context) {
	fail := faillog.New(a.log, "database backup failed", 0)
	wait := time.Duration(0)
	if last := dbfile.LatestBackup(a.cfg.DataDir); !last.IsZero() {
		wait = max(0, a.cfg.BackupInterval-time.Since(last))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		name, err := dbfile.Backup(a.db, a.cfg.DataDir, now)
		if name == "" {
			fail.Fail(now, err, nil)
			t.Reset(min(a.cfg.BackupInterval, 10*time.Minute))
			continue
		}
		fail.OK(now)
		a.log.Debug().Str("file", name).Int64("took_ms", time.Since(now).Milliseconds()).Msg("database backed up")
		if err != nil { // written; syncing or pruning the directory failed (at most once an interval)
			a.log.Warn().Err(err).Str("file", name).Msg("database backed up, but its directory was not tidied")
		}
		t.Reset(a.cfg.BackupInterval)
	}
}
