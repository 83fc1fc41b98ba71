package dbfile

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"pilebridge/internal/boltwalk"
)

// The traces a salvage leaves between its steps, and what a run makes of
// them. Steps: the salvaged database is written beside the database
// (salvagedPath) and synced; the damaged database is renamed aside
// (.damaged-TIME); the salvaged one is renamed into place; the marker is
// written. The directory is synced after each.

func salvagedPath(p Paths) string { return p.DB() + ".salvaged" }

// newestAside is the newest damaged database a salvage moved aside, or "".
func newestAside(p Paths) string {
	m, _ := filepath.Glob(p.DB() + ".damaged-*")
	if len(m) == 0 {
		return ""
	}
	sort.Strings(m) // the names carry their UTC time: the last is the newest
	return m[len(m)-1]
}

// finishInterrupted completes a salvage interrupted after its database was
// written and the damaged one moved aside, before the new one was moved
// into place: the database is missing and the salvaged one is whole. It
// reports whether it did.
func (sv salvager) finishInterrupted(p Paths, rep *Report, own owner) (bool, error) {
	tmp := salvagedPath(p)
	if _, err := os.Stat(tmp); err != nil {
		return false, nil
	}
	if _, err := os.Stat(p.DB()); err == nil {
		// interrupted before the damaged file was moved aside: it is still
		// the source, and this run's salvaged database supersedes that one
		rep.Lines = append(rep.Lines, fmt.Sprintf("an earlier salvage was interrupted before %s was moved aside: salvaging again (its %s is superseded)", p.DB(), tmp))
		return false, nil
	}
	res, err := boltwalk.Walk(tmp)
	if err != nil || res.Err() != nil {
		rep.Lines = append(rep.Lines, fmt.Sprintf("%s, left by an interrupted salvage, is not whole: salvaging again from the damaged file", tmp))
		return false, nil
	}
	rep.Aside = newestAside(p)
	rep.Lines = append(rep.Lines, fmt.Sprintf("an earlier salvage was interrupted before its database was moved into place: %s moved to %s", tmp, p.DB()))
	if err := own.apply(tmp); err != nil {
		return false, err
	}
	if err := sv.placeSalvaged(p, rep, own); err != nil {
		return false, err
	}
	if said := own.said(p.DB()); said != "" {
		rep.Lines = append(rep.Lines, said)
	}
	return true, nil
}

// owner is who the service's files belong to: the database's owner, group
// and mode (or, without one, the data directory's owner and group, 0600).
type owner struct {
	uid, gid int
	mode     os.FileMode
	from     string
}

func ownerFor(p Paths) (owner, error) {
	for _, path := range []string{p.DB(), newestAside(p)} {
		if path == "" {
			continue
		}
		if st, err := os.Stat(path); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				return owner{uid: int(sys.Uid), gid: int(sys.Gid), mode: st.Mode().Perm(), from: path}, nil
			}
		}
	}
	st, err := os.Stat(p.Dir)
	if err != nil {
		return owner{}, fmt.Errorf("data_dir: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{uid: os.Geteuid(), gid: os.Getegid(), mode: 0o600, from: p.Dir}, nil
	}
	return owner{uid: int(sys.Uid), gid: int(sys.Gid), mode: 0o600, from: p.Dir}, nil
}

// apply gives path the owner's user, group and mode.
func (o owner) apply(path string) error {
	if err := os.Chown(path, o.uid, o.gid); err != nil && !errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("give %s to uid %d gid %d: %w", path, o.uid, o.gid, err)
	}
	if err := os.Chmod(path, o.mode); err != nil {
		return fmt.Errorf("mode of %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != o.uid || int(sys.Gid) != o.gid) {
		return fmt.Errorf("%s is owned by uid %d gid %d, not %s's %s: run salvage as root or as the service's user", path, sys.Uid, sys.Gid, o.from, o.name())
	}
	return nil
}

// said tells, when salvage ran as another user than the files' owner, that
// the files were given to the owner.
func (o owner) said(path string) string {
	if os.Geteuid() == o.uid {
		return ""
	}
	me := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(me); err == nil {
		me = u.Username
	}
	return fmt.Sprintf("%s and the marker are owned by %s, mode %04o, as %s is (salvage ran as %s)", path, o.name(), o.mode, o.from, me)
}

func (o owner) name() string {
	u, g := strconv.Itoa(o.uid), strconv.Itoa(o.gid)
	if x, err := user.LookupId(u); err == nil {
		u = x.Username
	}
	if x, err := user.LookupGroupId(g); err == nil {
		g = x.Name
	}
	return u + ":" + g
}
