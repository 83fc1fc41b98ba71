package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"pilebridge/internal/config"
	"pilebridge/internal/dbfile"
	"pilebridge/internal/station"
)

const dbUsage = `usage:
pilebridge db salvage --config FILE   read every page of a damaged database that can be read,
                                      fill in from data_dir/backup, write a new one and move the
                                      damaged file aside; prints what was recovered and what was not
pilebridge db reset --config FILE     start with an empty store on purpose (the old file is moved aside)
pilebridge db backup --config FILE    copy the database to data_dir/backup now (the daemon does it
                                      every backup_interval; while it runs, it writes the copy)
Stop the daemon first for salvage and reset.`

// dbAbout is each subcommand's own --help text.
var dbAbout = map[string]string{
	"salvage": "Reads every page of a damaged database that can be read (every copy the file holds), fills in from data_dir/backup, writes a new database and moves the damaged file aside; prints what was recovered and what was not. Stop the daemon first. Run as root it is fine: the files it writes take the owner and mode of the database they replace. Interrupted, run it again: it finishes from the copies it left.",
	"reset":   "Starts with an empty store on purpose: the old database is moved aside, not deleted. Stop the daemon first.",
	"backup":  "Copies the database to data_dir/backup now (the daemon does it every backup_interval). While the daemon runs, it writes the copy itself, asked through its local API.",
}

func cmdDB(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, dbUsage)
		if len(args) == 0 {
			return errors.New("db: want salvage, reset or backup")
		}
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	about, ok := dbAbout[sub]
	if !ok {
		return fmt.Errorf("db: unknown subcommand %q: want salvage, reset or backup", sub)
	}
	fs, path := configFlag("db "+sub, "pilebridge db "+sub+" --config FILE", about, stdout)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	now := time.Now()
	switch sub {
	case "salvage":
		rep, err := station.Salvage(cfg.DataDir, now)
		if err != nil {
			return fmt.Errorf("salvage: %w", err)
		}
		for _, d := range rep.Damage {
			fmt.Fprintln(stdout, "damaged:", d)
		}
		if rep.Backup != "" {
			fmt.Fprintln(stdout, "backup used:", rep.Backup)
		}
		for _, l := range rep.Lines {
			fmt.Fprintln(stdout, l)
		}
		if rep.Changed {
			if rep.Aside != "" {
				fmt.Fprintf(stdout, "the damaged file is kept as %s\n", rep.Aside)
			}
			fmt.Fprintln(stdout, "salvaged database written: start the daemon again")
		}
		return nil
	case "reset":
		aside, err := dbfile.Reset(cfg.DataDir, now)
		if err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		if aside != "" {
			fmt.Fprintf(stdout, "the old database is kept as %s\n", aside)
		}
		fmt.Fprintln(stdout, "the next start begins with an empty store")
		return nil
	case "backup":
		db, err := station.OpenDB(cfg.DataDir, 300*time.Millisecond)
		if errors.Is(err, dbfile.ErrInUse) {
			// the daemon holds it: it writes the hot copy itself
			res, err := backupByDaemon(cfg)
			if err != nil {
				return fmt.Errorf("backup: the daemon holds the database and %w", err)
			}
			fmt.Fprintln(stdout, "backup written by the running daemon:", res.File)
			if res.Warning != "" {
				fmt.Fprintln(stdout, "warning:", res.Warning)
			}
			return nil
		}
		if err != nil {
			return err
		}
		defer db.Close()
		name, err := dbfile.Backup(db, cfg.DataDir, now)
		if name != "" {
			fmt.Fprintln(stdout, "backup written:", name)
		}
		return err
	}
	return fmt.Errorf("db: unknown subcommand %q: want salvage, reset or backup", sub)
}

// backupByDaemon asks the running daemon for a hot copy.
func backupByDaemon(cfg *config.Config) (station.BackupResult, error) {
	c, err := station.NewClient(cfg)
	if err != nil {
		return station.BackupResult{}, err
	}
	return c.Backup()
}
