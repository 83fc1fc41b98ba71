package dbfile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// Guard watches that the database the daemon has open is still the file at
// its path. A data directory deleted under the daemon (`rm -rf`), or a file
// renamed over the database, leaves the daemon writing every bill to a file
// no path reaches: a restart would open nothing, or another file, and the
// bills would be gone. The open file is the truth; the guard puts a copy of
// it back at the path (a foreign file there is moved aside, never deleted),
// with the marker, and refreshes the copy on each check while the daemon
// still writes to the unlinked file. A restart then opens the copy.
type Guard struct {
	db  *bbolt.DB
	p   Paths
	own owner

	dev, ino   uint64 // the open file's
	copyIno    uint64 // the copy put at the path; 0: none
	copyTx     int    // the transaction the copy holds
	replacedAt time.Time
}

// NewGuard watches db, just opened from dir: the file at the path now is
// the open one.
func NewGuard(db *bbolt.DB, dir string) (*Guard, error) {
	p := Paths{Dir: dir}
	var st syscall.Stat_t
	if err := syscall.Stat(p.DB(), &st); err != nil {
		return nil, fmt.Errorf("database %s: %w", p.DB(), err)
	}
	own, err := ownerFor(p)
	if err != nil {
		return nil, err
	}
	own.mode = os.FileMode(st.Mode).Perm()
	return &Guard{db: db, p: p, own: own, dev: uint64(st.Dev), ino: st.Ino}, nil
}

// Problem is what Check found: since when the path no longer reaches the
// open database, and what was done. Zero when all is well.
type Problem struct {
	Since time.Time
	What  string
}

// Check compares the path with the open file and repairs what it can. It
// returns the lasting problem, if any, and the error of a repair that
// failed.
func (g *Guard) Check(now time.Time) (Problem, error) {
	var st syscall.Stat_t
	err := syscall.Stat(g.p.DB(), &st)
	switch {
	case err == nil && uint64(st.Dev) == g.dev && st.Ino == g.ino:
		if !exists(g.p.Marker()) {
			if err := g.marker(); err != nil {
				return Problem{}, err
			}
		}
		return Problem{}, nil
	case err == nil && st.Ino == g.copyIno:
		return g.problem(), g.refresh(false)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return Problem{Since: now, What: "the database path cannot be checked: " + err.Error()}, err
	}
	if g.replacedAt.IsZero() {
		g.replacedAt = now
	}
	if err := g.refresh(true); err != nil {
		return g.problem(), err
	}
	return g.problem(), nil
}

func (g *Guard) problem() Problem {
	return Problem{Since: g.replacedAt, What: fmt.Sprintf("%s was removed or replaced while open: the daemon keeps writing to its open file and a copy of it at that path (refreshed on every check); restart the daemon to write to the path again", g.p.DB())}
}

// refresh writes a copy of the open database at the path when it has
// changed since the last copy (always when force).
func (g *Guard) refresh(force bool) error {
	var id int
	if err := g.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		return err
	}
	if !force && id == g.copyTx {
		return nil
	}
	if err := os.MkdirAll(g.p.Dir, 0o750); err != nil {
		return fmt.Errorf("restore data_dir %s: %w", g.p.Dir, err)
	}
	if _, err := os.Stat(g.p.DB()); err == nil && force {
		aside := g.p.DB() + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(g.p.DB(), aside); err != nil {
			return fmt.Errorf("move the foreign %s aside: %w", g.p.DB(), err)
		}
	}
	tmp := g.p.DB() + ".restore"
	_ = os.Remove(tmp) // a stale one, or a link planted at its name: never followed
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, g.own.mode)
	if err != nil {
		return fmt.Errorf("restore %s: %w", g.p.DB(), err)
	}
	err = g.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); _, err := tx.WriteTo(f); return err })
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = g.own.apply(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, g.p.DB())
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore %s: %w", g.p.DB(), err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(g.p.DB(), &st); err != nil {
		return err
	}
	g.copyIno, g.copyTx = st.Ino, id
	return g.marker()
}

func (g *Guard) marker() error {
	if err := writeMarker(g.p); err != nil {
		return err
	}
	return g.own.apply(g.p.Marker())
}
