package dbfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

func count(t *testing.T, db *bbolt.DB) int {
	n := 0
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket([]byte("outbox")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}))
	return n
}

// Issue 26, item 4: the data directory deleted under the daemon, or a file
// renamed over its database: the guard puts the open database back at the
// path (a foreign file moved aside), keeps the copy fresh while the daemon
// writes on, and a restart opens it with every record.
func TestGuardRestoresTheOpenDatabase(t *testing.T) {
	for _, how := range []string{"rm -rf data_dir", "a file renamed over it"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir() + "/data"
			p := Paths{Dir: dir}
			db, err := Open(dir, opts())
			require.NoError(t, err)
			put(t, db, 4)
			g, err := NewGuard(db, dir)
			require.NoError(t, err)
			now := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
			pr, err := g.Check(now)
			require.NoError(t, err)
			assert.Zero(t, pr, "all well")

			if how == "rm -rf data_dir" {
				require.NoError(t, os.RemoveAll(dir))
			} else {
				other := t.TempDir()
				old, err := Open(other, opts())
				require.NoError(t, err)
				require.NoError(t, old.Close())
				require.NoError(t, os.Rename(Paths{Dir: other}.DB(), p.DB()))
			}
			pr, err = g.Check(now.Add(5 * time.Second))
			require.NoError(t, err)
			assert.Equal(t, now.Add(5*time.Second), pr.Since)
			assert.Contains(t, pr.What, p.DB())
			put(t, db, 6) // the daemon writes on, to its open file
			pr, err = g.Check(now.Add(10 * time.Second))
			require.NoError(t, err)
			assert.Equal(t, now.Add(5*time.Second), pr.Since, "one lasting problem")
			require.NoError(t, db.Close()) // kill -9 would leave the same: what was committed

			db, err = Open(dir, opts())
			require.NoError(t, err, "the restart opens the copy")
			defer db.Close()
			assert.Equal(t, 6, count(t, db), "every record the open file held")
			assert.FileExists(t, p.Marker())
		})
	}
}

// A restart that finds no database and no marker but backups refuses to
// start empty (the directory was emptied), and points to salvage.
func TestOpenRefusesAnEmptiedDirectoryWithBackups(t *testing.T) {
	dir := t.TempDir()
	p := Paths{Dir: dir}
	db, err := Open(dir, opts())
	require.NoError(t, err)
	put(t, db, 4)
	_, err = Backup(db, dir, time.Now())
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, os.Remove(p.DB()))
	require.NoError(t, os.Remove(p.Marker()))
	_, err = Open(dir, opts())
	var ue *UnusableError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "holds copies of an earlier one")
	assert.Contains(t, err.Error(), "db salvage")
	_, err = Reset(dir, time.Now())
	require.NoError(t, err)
	db, err = Open(dir, opts())
	require.NoError(t, err, "a reset starts empty on purpose")
	require.NoError(t, db.Close())
}

// Issue 28, item 4: a link planted at the database's name is refused; one
// planted at a backup's or a restore's temporary name is replaced, and
// what it points to is untouched.
func TestLinksInDataDirAreNeverFollowed(t *testing.T) {
	dir := t.TempDir()
	p := Paths{Dir: dir}
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("not the daemon's"), 0o600))

	require.NoError(t, os.Symlink(victim, p.DB()))
	_, err := Open(dir, opts())
	var ue *UnusableError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "symbolic link")
	require.NoError(t, os.Remove(p.DB()))

	db, err := Open(dir, opts())
	require.NoError(t, err)
	defer db.Close()
	put(t, db, 3)
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	require.NoError(t, os.MkdirAll(p.Backups(), 0o750))
	tmp := filepath.Join(p.Backups(), "pilebridge-"+now.UTC().Format("20060102T150405.000Z")+".db.tmp")
	require.NoError(t, os.Symlink(victim, tmp))
	_, err = Backup(db, dir, now)
	require.NoError(t, err)

	g, err := NewGuard(db, dir)
	require.NoError(t, err)
	require.NoError(t, os.Remove(p.DB()))
	require.NoError(t, os.Symlink(victim, p.DB()+".restore"))
	_, err = g.Check(now)
	require.NoError(t, err)
	got, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "not the daemon's", string(got), "the links' target untouched")
	st, err := os.Lstat(p.DB())
	require.NoError(t, err)
	assert.True(t, st.Mode().IsRegular())
}
