package station

import (
	"time"

	"pilebridge/internal/dbfile"
	"pilebridge/session"
	"pilebridge/uploader"
)

// Salvage is `pilebridge db salvage` on data directory dir: dbfile reads
// every copy the damaged file and its backups hold and writes the result;
// the outbox's rule completes the queue and ledger and names the orders
// known to be billed, which the sessions' rule then leaves closed.
func Salvage(dir string, now time.Time) (*dbfile.Report, error) {
	return dbfile.Salvage(dir, now, func(got, backup *dbfile.Contents, damaged map[string]bool) []string {
		out := uploader.SalvageOutbox(got, backup, damaged)
		return append(out.Lines, session.SalvageSessions(got, backup, damaged, out.Billed)...)
	})
}
