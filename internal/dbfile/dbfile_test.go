package dbfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func opts() *bbolt.Options {
	return &bbolt.Options{Timeout: 200 * time.Millisecond, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
}

func put(t *testing.T, db *bbolt.DB, n int) {
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("outbox"))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := b.Put([]byte{byte(i >> 8), byte(i)}, make([]byte, 200)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// The file's life: created with its marker; then an emptied or lost file,
// or a damaged one, is refused naming the file and what to do; a reset
// moves the old file aside and the next open starts empty.
func TestOpenRefusesWhatWouldLoseBills(t *testing.T) {
	dir := t.TempDir()
	p := Paths{Dir: dir}
	db, err := Open(dir, opts())
	require.NoError(t, err)
	put(t, db, 500)
	require.NoError(t, db.Close())
	assert.FileExists(t, p.Marker())

	orig, err := os.ReadFile(p.DB())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.DB(), orig[:len(orig)/2], 0o600))
	_, err = Open(dir, opts())
	var ue *UnusableError
	require.ErrorAs(t, err, &ue)
	assert.ErrorIs(t, err, ErrUnusable)
	assert.Contains(t, err.Error(), p.DB())
	assert.Contains(t, err.Error(), "db salvage")

	require.NoError(t, os.WriteFile(p.DB(), nil, 0o600))
	_, err = Open(dir, opts())
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "is empty although this data directory was used before")
	require.NoError(t, os.Remove(p.DB()))
	_, err = Open(dir, opts())
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "is missing")

	require.NoError(t, os.WriteFile(p.DB(), orig, 0o600))
	aside, err := Reset(dir, time.Now())
	require.NoError(t, err)
	assert.FileExists(t, aside, "never deleted: moved aside")
	db, err = Open(dir, opts())
	require.NoError(t, err, "a reset starts empty on purpose")
	require.NoError(t, db.Close())
}

// While the daemon holds the file, a tool's open says it is in use (and
// the CLI asks the daemon instead); it never walks the live file and calls
// it damaged.
func TestOpenWhileHeld(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, opts())
	require.NoError(t, err)
	defer db.Close()
	put(t, db, 100)
	_, err = Open(dir, opts())
	require.Error(t, err)
	assert.True(t, errors.Is(err, berrors.ErrTimeout), "%v", err)
	assert.False(t, errors.Is(err, ErrUnusable))
}

// Backups are whole, two are kept, and a salvage can read them.
func TestBackupsKeptTwoDeep(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, opts())
	require.NoError(t, err)
	defer db.Close()
	put(t, db, 50)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 4; i++ {
		_, err := Backup(db, dir, t0.Add(time.Duration(i)*time.Hour))
		require.NoError(t, err)
	}
	list, err := Backups(dir)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Contains(t, list[0], "20261201T030000", "newest first")
	n, _ := filepath.Glob(filepath.Join(dir, BackupDir, "*.tmp"))
	assert.Empty(t, n, "no temporary file left")
}

// Issue 26, item 5: the temporary copy an interrupted backup left (a whole
// database each) is removed by the next backup, with the old copies past
// the newest two.
func TestBackupRemovesInterruptedCopies(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, opts())
	require.NoError(t, err)
	defer db.Close()
	put(t, db, 10)
	now := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	var names []string
	for i := 0; i < 3; i++ {
		name, err := Backup(db, dir, now.Add(time.Duration(i)*time.Hour))
		require.NoError(t, err)
		names = append(names, name)
	}
	stale := filepath.Join(Paths{Dir: dir}.Backups(), "pilebridge-20261204T000000.000Z.db.tmp")
	require.NoError(t, os.WriteFile(stale, make([]byte, 8192), 0o600))
	name, err := Backup(db, dir, now.Add(4*time.Hour))
	require.NoError(t, err)
	assert.NoFileExists(t, stale, "the interrupted copy")
	list, err := Backups(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{name, names[2]}, list, "the newest two")
}
