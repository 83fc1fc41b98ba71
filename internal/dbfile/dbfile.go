// Package dbfile owns the daemon's database file as a file: it is checked
// before bbolt opens it, created so that a full disk never leaves an empty
// file behind, refused when a data directory that was used before has lost
// it, and copied hot to data_dir/backup/ for `pilebridge db salvage`.
// What is inside (sessions, outbox, ledger) belongs to session and uploader.
package dbfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"pilebridge/internal/boltwalk"
	"pilebridge/internal/safefile"
)

// ErrInUse: another process (the daemon) holds the database; opening it
// timed out.
var ErrInUse = berrors.ErrTimeout

// Names inside data_dir.
const (
	DBName     = "pilebridge.db"
	MarkerName = "pilebridge.initialized" // written once the first database is on disk
	BackupDir  = "backup"
	keepBackup = 2
)

// ErrUnusable is wrapped by every refusal to open the store: a damaged,
// emptied or missing database. The daemon exits with ExitUnusable on it.
var ErrUnusable = errors.New("store unusable")

// ExitUnusable is sysexits' EX_TEMPFAIL: the unit does not restart the
// daemon on it (RestartPreventExitStatus) until someone has run salvage.
const ExitUnusable = 75

// Paths are the files of a data directory.
type Paths struct{ Dir string }

func (p Paths) DB() string      { return filepath.Join(p.Dir, DBName) }
func (p Paths) Marker() string  { return filepath.Join(p.Dir, MarkerName) }
func (p Paths) Backups() string { return filepath.Join(p.Dir, BackupDir) }

// UnusableError says why the store is refused and what to do.
type UnusableError struct {
	Path string
	Why  string
	Do   string
}

func (e *UnusableError) Error() string {
	return fmt.Sprintf("database %s %s; the file is kept as it is. %s", e.Path, e.Why, e.Do)
}

func (e *UnusableError) Unwrap() error { return ErrUnusable }

const salvageHint = "Run `pilebridge db salvage --config FILE` (it reads what it can and fills in from data_dir/backup), then start the daemon again."

// Open checks the database file and opens it with opts. A file that does
// not walk clean, or a missing or empty one in a data directory used before,
// is an *UnusableError; a new one is created whole or not at all.
func Open(dir string, opts *bbolt.Options) (*bbolt.DB, error) {
	p := Paths{Dir: dir}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if st, err := os.Lstat(p.DB()); err == nil && st.Mode()&os.ModeSymlink != 0 {
		// the database is the daemon's own file: a link could point it at
		// any file its user (root, even) may write
		return nil, &UnusableError{Path: p.DB(), Why: "is a symbolic link, not the daemon's own file", Do: "Remove the link; if it pointed to the real database, move that file to " + p.DB() + "."}
	}
	st, err := os.Stat(p.DB())
	used := exists(p.Marker())
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("database %s: %w", p.DB(), err)
	case err != nil || st.Size() == 0:
		what := "is missing"
		if err == nil {
			what = "is empty"
		}
		if used {
			return nil, &UnusableError{Path: p.DB(), Why: what + " although this data directory was used before (" + MarkerName + " is there): unsent bills and open sessions would be forgotten",
				Do: salvageHint + " Or, to start with an empty store on purpose: `pilebridge db reset --config FILE`."}
		}
		if b, _ := Backups(dir); len(b) > 0 {
			// the marker went with the database (a data directory emptied
			// under the daemon): the backups say it was used
			return nil, &UnusableError{Path: p.DB(), Why: what + ", and " + p.Backups() + " holds copies of an earlier one: unsent bills and open sessions would be forgotten",
				Do: salvageHint + " Or, to start with an empty store on purpose: `pilebridge db reset --config FILE`."}
		}
		if err := create(p, opts); err != nil {
			return nil, err
		}
	default:
		if err := checkWalk(p, opts.Timeout, unix.LOCK_EX); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(p.DB(), opts)
	if err != nil {
		return nil, err
	}
	if !used {
		if err := writeMarker(p); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// OpenReadOnly opens the database to read it only (`sessions`, `outbox
// list`): nothing is created or written, so it works on a card the kernel
// turned read-only. The file is checked as by Open; a running daemon holds
// it, and then this times out (berrors.ErrTimeout) after opts.Timeout.
func OpenReadOnly(dir string, opts *bbolt.Options) (*bbolt.DB, error) {
	p := Paths{Dir: dir}
	st, err := os.Stat(p.DB())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("database %s: none yet (the daemon creates it on its first start)", p.DB())
	case err != nil:
		return nil, fmt.Errorf("database %s: %w", p.DB(), err)
	case st.Size() == 0:
		return nil, &UnusableError{Path: p.DB(), Why: "is empty", Do: salvageHint}
	}
	if err := checkWalk(p, opts.Timeout, unix.LOCK_SH); err != nil {
		return nil, err
	}
	o := *opts
	o.ReadOnly = true
	return openBolt(p.DB(), &o)
}

// checkWalk walks the database file page by page before bbolt opens it.
// The walk must not race a running daemon's commits (it would see pages
// reused under an older meta page): it holds bbolt's lock, exclusive to
// open for writing, shared to read.
func checkWalk(p Paths, wait time.Duration, how int) error {
	unlock, err := lockFor(p.DB(), wait, how)
	if err != nil {
		return err
	}
	res, err := boltwalk.Walk(p.DB())
	unlock()
	if err != nil {
		return &UnusableError{Path: p.DB(), Why: "is unreadable: " + err.Error(), Do: salvageHint}
	}
	if derr := res.Err(); derr != nil {
		return &UnusableError{Path: p.DB(), Why: "is damaged: " + derr.Error(), Do: salvageHint}
	}
	return nil
}

// openBolt opens with bbolt, turning a panic on this goroutine into an error.
func openBolt(path string, opts *bbolt.Options) (db *bbolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &UnusableError{Path: path, Why: fmt.Sprintf("failed to open: %v", r), Do: salvageHint}
		}
	}()
	db, err = bbolt.Open(path, 0o600, opts)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%s is in use (is the daemon running?): %w", path, err)
		}
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			return nil, &UnusableError{Path: path, Why: "is not readable: " + err.Error(), Do: salvageHint}
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// create makes a new database beside the final name and renames it in
// place once it is whole on disk: a full disk leaves no empty file behind.
func create(p Paths, opts *bbolt.Options) error {
	tmp := p.DB() + ".new"
	_ = os.Remove(tmp)
	fail := func(err error) error {
		_ = os.Remove(tmp)
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("create database %s: the disk is full (%w): free space in %s", p.DB(), err, p.Dir)
		}
		return fmt.Errorf("create database %s: %w", p.DB(), err)
	}
	o := *opts
	o.Timeout = 0
	db, err := bbolt.Open(tmp, 0o600, &o)
	if err != nil {
		return fail(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return nil }); err != nil {
		db.Close()
		return fail(err)
	}
	if err := db.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, p.DB()); err != nil {
		return fail(err)
	}
	return syncDir(p.Dir)
}

func writeMarker(p Paths) error {
	if err := safefile.Write(p.Marker(), []byte("This data directory holds pilebridge's database; see `pilebridge db --help`.\n"), 0o600); err != nil {
		return fmt.Errorf("data_dir marker %s: %w", p.Marker(), err)
	}
	return syncDir(p.Dir)
}

// Reset moves the database aside (never deletes it) so that the next start
// begins with an empty store: `pilebridge db reset`.
func Reset(dir string, now time.Time) (string, error) {
	p := Paths{Dir: dir}
	if err := lockFree(p.DB()); err != nil {
		return "", err
	}
	aside := ""
	if st, err := os.Stat(p.DB()); err == nil && st.Size() > 0 {
		aside = p.DB() + ".reset-" + now.UTC().Format("20060102T150405Z")
		if err := os.Rename(p.DB(), aside); err != nil {
			return "", err
		}
	} else if err == nil {
		if err := os.Remove(p.DB()); err != nil {
			return "", err
		}
	}
	if err := os.Remove(p.Marker()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	// the backups are the old store's: kept, beside, so that the next start
	// does not take them for a store it lost
	if exists(p.Backups()) {
		if err := os.Rename(p.Backups(), p.Backups()+".reset-"+now.UTC().Format("20060102T150405Z")); err != nil {
			return "", err
		}
	}
	return aside, syncDir(dir)
}

// Backup writes a hot copy of db (a read transaction: commits go on) to
// data_dir/backup/, named by its time, and keeps the newest two. The copy
// is written to a temporary name and renamed once fsynced, so a failed
// backup never replaces a good one. Run by root (`pilebridge db backup`),
// the directory and the copy are given to the database's owner, so the
// daemon can prune and read them. Temporary copies an interrupted backup
// left are removed.
func Backup(db *bbolt.DB, dir string, now time.Time) (string, error) {
	bdir := Paths{Dir: dir}.Backups()
	own, err := ownerFor(Paths{Dir: dir})
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Stat(bdir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(bdir, 0o750); err != nil {
			return "", fmt.Errorf("backup: %w", err)
		}
		dirOwn := own
		dirOwn.mode = 0o750
		if err := dirOwn.apply(bdir); err != nil {
			return "", fmt.Errorf("backup: %w", err)
		}
	}
	name := filepath.Join(bdir, "pilebridge-"+now.UTC().Format("20060102T150405.000Z")+".db")
	tmp := name + ".tmp"
	_ = os.Remove(tmp) // a stale one, or a link planted at its name: never followed
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	err = db.View(func(tx *bbolt.Tx) error { _, err := tx.WriteTo(f); return err })
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = own.apply(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("backup to %s: %w", bdir, err)
	}
	if err := syncDir(bdir); err != nil {
		return name, fmt.Errorf("backup %s written, its directory not synced: %w", name, err)
	}
	return name, pruneBackups(dir)
}

// pruneBackups keeps the newest keepBackup copies and removes the
// temporary copies of interrupted backups (each a whole database: repeated
// cuts would fill the card).
func pruneBackups(dir string) error {
	list, err := Backups(dir)
	if err != nil {
		return fmt.Errorf("prune backups: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(Paths{Dir: dir}.Backups(), "pilebridge-*.db.tmp"))
	if err != nil {
		return fmt.Errorf("prune backups: %w", err)
	}
	if len(list) > keepBackup {
		stale = append(stale, list[keepBackup:]...)
	}
	var errs []error
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("prune backups: %w", errors.Join(errs...))
	}
	return nil
}

// Backups lists the backup copies, newest first.
func Backups(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(Paths{Dir: dir}.Backups(), "pilebridge-*.db"))
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(m))) // names sort by time
	return m, nil
}

// LatestBackup is the time of the newest backup; zero when none.
func LatestBackup(dir string) time.Time {
	list, _ := Backups(dir)
	if len(list) == 0 {
		return time.Time{}
	}
	st, err := os.Stat(list[0])
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// lockFor takes the exclusive lock bbolt takes on the file, waiting up to
// wait for another process (a daemon still stopping) to let it go. The
// error then wraps berrors.ErrTimeout, as bbolt's own would.
func lockFor(path string, wait time.Duration, how int) (unlock func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || !time.Now().Before(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is in use (is the daemon running?): %w", path, berrors.ErrTimeout)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockFree fails when another process (the daemon) holds the database.
func lockFree(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("%s is in use: stop the daemon first (systemctl stop pilebridge)", path)
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) { // a filesystem that cannot sync a directory
		return err
	}
	return nil
}
