package dbfile

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"pilebridge/internal/boltwalk"
)

// Contents is a database read as data: bucket path ("a/b" for nested) ->
// key -> value, and each bucket's sequence.
type Contents struct {
	Buckets   map[string]map[string][]byte
	Sequences map[string]uint64
	// Loose are keys and values on leaf pages cut off from the damaged
	// file's tree (boltwalk.Result.Loose): bucket unknown, maybe stale.
	Loose []boltwalk.KV
}

// Bucket returns the bucket's map, creating it.
func (c *Contents) Bucket(name string) map[string][]byte {
	b := c.Buckets[name]
	if b == nil {
		b = map[string][]byte{}
		c.Buckets[name] = b
	}
	return b
}

// A Rule completes, for the buckets the packages it calls own, what a
// damaged file lost: from backup (nil when there is none) where the
// damaged buckets (damaged[""] means the whole tree) allow, never bringing
// back what got shows as done. It returns lines for the report.
type Rule func(got, backup *Contents, damaged map[string]bool) []string

// Report is what salvage did.
type Report struct {
	Damage  []boltwalk.Damage
	Backup  string // the backup used; "" when none
	Aside   string // where the damaged file was moved
	Lines   []string
	Changed bool
}

// Salvage reads every page of the database it can, fills in from the
// newest clean backup by rule, writes a new database and moves the damaged
// one aside. A database that walks clean is left alone.
//
// Every step is a rename of a synced file with the directory synced after
// it, and a run finds what an interrupted one left (salvage_steps.go): a
// whole salvaged database not yet moved into place is moved in; with the
// database missing, the newest damaged file moved aside is read instead;
// nothing is deleted that a newer copy does not supersede. The files it
// writes take the owner, group and mode of the database they replace (or
// of the data directory), so a salvage run as root leaves a database the
// service's user opens.
func Salvage(dir string, now time.Time, rule Rule) (*Report, error) {
	return salvager{dir: dir, now: now, rule: rule}.run()
}

// salvager is one salvage; after, when set (tests), is called after each
// step and may stop the run there, as a crash would.
type salvager struct {
	dir   string
	now   time.Time
	rule  Rule
	after func(step string) error
}

func (sv salvager) run() (*Report, error) {
	p := Paths{Dir: sv.dir}
	if err := lockFree(p.DB()); err != nil {
		return nil, err
	}
	rep := &Report{}
	own, err := ownerFor(p)
	if err != nil {
		return nil, err
	}
	if done, err := sv.finishInterrupted(p, rep, own); done || err != nil {
		return rep, err
	}
	source := p.DB()
	if _, err := os.Stat(source); errors.Is(err, os.ErrNotExist) {
		if aside := newestAside(p); aside != "" {
			// an interrupted run moved it aside and did not finish: read it there
			source, rep.Aside = aside, aside
			rep.Lines = append(rep.Lines, fmt.Sprintf("%s is missing; reading the damaged file an earlier salvage moved aside: %s", p.DB(), aside))
		}
	}
	got := &Contents{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}}
	damaged := map[string]bool{}
	res, err := boltwalk.Scavenge(source)
	switch {
	case err == nil:
		got.Buckets, got.Sequences, got.Loose = res.Buckets, res.Sequences, res.Loose
		rep.Damage = res.Damage
		for _, d := range res.Damage {
			damaged[strings.SplitN(d.Bucket, "/", 2)[0]] = true
		}
		if len(res.Damage) == 0 && source == p.DB() {
			rep.Lines = append(rep.Lines, fmt.Sprintf("%s reads clean: nothing to salvage", p.DB()))
			return rep, nil
		}
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, boltwalk.ErrNotBolt):
		damaged[""] = true
		rep.Damage = []boltwalk.Damage{{Err: err.Error()}}
	default:
		return nil, err
	}
	var backup *Contents
	list, _ := Backups(sv.dir)
	for _, b := range list {
		r, err := boltwalk.Walk(b)
		if err != nil || r.Err() != nil {
			rep.Lines = append(rep.Lines, fmt.Sprintf("backup %s is not usable, skipped", b))
			continue
		}
		backup = &Contents{Buckets: r.Buckets, Sequences: r.Sequences}
		rep.Backup = b
		break
	}
	if backup == nil {
		rep.Lines = append(rep.Lines, "no usable backup: only what the damaged file still holds is kept")
	}
	if sv.rule != nil { // nil: the buckets as read, nothing completed (tests)
		rep.Lines = append(rep.Lines, sv.rule(got, backup, damaged)...)
	}
	if backup != nil {
		for name, seq := range backup.Sequences {
			got.Sequences[name] = max(got.Sequences[name], seq)
		}
	}
	tmp := salvagedPath(p)
	if err := write(tmp, got); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("write the salvaged database: %w", err)
	}
	if err := own.apply(tmp); err != nil {
		return nil, err
	}
	if err := sv.step(p, "written"); err != nil {
		return nil, err
	}
	if source == p.DB() {
		if _, err := os.Stat(p.DB()); err == nil {
			rep.Aside = p.DB() + ".damaged-" + sv.now.UTC().Format("20060102T150405Z")
			if err := os.Rename(p.DB(), rep.Aside); err != nil {
				return nil, err
			}
			if err := sv.step(p, "moved aside"); err != nil {
				return nil, err
			}
		}
	}
	if err := sv.placeSalvaged(p, rep, own); err != nil {
		return nil, err
	}
	if said := own.said(p.DB()); said != "" {
		rep.Lines = append(rep.Lines, said)
	}
	return rep, nil
}

// step syncs the directory after a step, and lets a test stop there.
func (sv salvager) step(p Paths, name string) error {
	if err := syncDir(p.Dir); err != nil {
		return err
	}
	if sv.after != nil {
		return sv.after(name)
	}
	return nil
}

// placeSalvaged moves the written salvaged database into place and writes
// the marker.
func (sv salvager) placeSalvaged(p Paths, rep *Report, own owner) error {
	if err := os.Rename(salvagedPath(p), p.DB()); err != nil {
		return err
	}
	if err := sv.step(p, "in place"); err != nil {
		return err
	}
	if err := writeMarker(p); err != nil {
		return err
	}
	if err := own.apply(p.Marker()); err != nil {
		return err
	}
	rep.Changed = true
	return syncDir(p.Dir)
}

// write creates a database at path holding c.
func write(path string, c *Contents) error {
	_ = os.Remove(path)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(c.Buckets))
	for n := range c.Buckets {
		names = append(names, n)
	}
	sort.Strings(names) // a parent before its nested buckets
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range names {
			parts := strings.Split(name, "/")
			b, err := tx.CreateBucketIfNotExists([]byte(parts[0]))
			if err != nil {
				return err
			}
			for _, sub := range parts[1:] {
				if b, err = b.CreateBucketIfNotExists([]byte(sub)); err != nil {
					return err
				}
			}
			for k, v := range c.Buckets[name] {
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
			if err := b.SetSequence(c.Sequences[name]); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
