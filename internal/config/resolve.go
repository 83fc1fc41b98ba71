package config

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Resolve is the second step: the config checked against the host it runs
// on, and completed from it. The data directory (exists or can be made,
// not writable by others, writable by this user), the listen token's mode,
// the app secret (from systemd's credentials directory or its file, whose
// mode is checked), and the serial devices (a /dev/serial/by-id link and
// its target are one line). Decode has checked the file itself.
func (c *Config) Resolve() Errors {
	ck := &checker{}
	if c.DataDir != "" {
		c.checkDataDir(ck)
	}
	c.resolveSecret(ck)
	c.resolveDevices(ck)
	return ck.errs
}

// resolveSecret finds the app secret: in the file named, or in the copy
// systemd's LoadCredential=app_secret:FILE hands the unit.
func (c *Config) resolveSecret(ck *checker) {
	p := c.Platform
	if p.AppSecret == "" && p.AppSecretFile == "" {
		// systemd's LoadCredential=app_secret:FILE hands the unit a copy
		// only it can read
		if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, "app_secret")); err == nil {
				p.AppSecretFile = filepath.Join(dir, "app_secret")
				c.Platform.AppSecretFile = p.AppSecretFile
			}
		}
	}
	switch {
	case p.AppSecret != "" && p.AppSecretFile != "":
		// Decode said so
	case p.AppSecret == "" && p.AppSecretFile == "":
		ck.bad("platform.app_secret", "give exactly one of app_secret or app_secret_file (or LoadCredential=app_secret:FILE in the unit)")
	case p.AppSecretFile != "":
		b, err := os.ReadFile(p.AppSecretFile)
		if errors.Is(err, os.ErrNotExist) {
			ck.bad("platform.app_secret_file", "%s does not exist (on the board: the app secret alone, owned root:pilebridge, mode 0640)", p.AppSecretFile)
			break
		}
		if err != nil {
			ck.bad("platform.app_secret_file", "%v", err)
			break
		}
		c.Platform.AppSecret = strings.TrimSpace(string(b))
		if c.Platform.AppSecret == "" {
			ck.bad("platform.app_secret_file", "%s is empty", p.AppSecretFile)
		}
		if w := secretModeWarning(p.AppSecretFile, ServiceGroup); w != "" {
			c.Warnings = append(c.Warnings, w)
		}
	}
}

// resolveDevices finds buses on one serial line under two names (a
// /dev/serial/by-id link and the device it points to).
func (c *Config) resolveDevices(ck *checker) {
	seen := map[string]string{}
	for i, b := range c.Buses {
		if b.Device == "" || strings.Contains(b.Device, "://") {
			continue
		}
		real, err := filepath.EvalSymlinks(b.Device)
		if err != nil {
			continue // not present here (a board's path): Decode compared it as written
		}
		key := fmt.Sprintf("buses[%d].device", i)
		if other, dup := seen[real]; dup {
			ck.bad(key, "%q is the same line as %s (%s): one bus per line", b.Device, other, real)
			continue
		}
		seen[real] = fmt.Sprintf("buses[%d]", i)
	}
}

func (c *Config) checkDataDir(ck *checker) {
	st, err := os.Stat(c.DataDir)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		// created at start: the nearest existing ancestor must be a
		// writable directory
		parent, isDir := nearestExisting(c.DataDir)
		switch {
		case parent != "" && !isDir:
			ck.bad("data_dir", "%s cannot be created: %s is a file", c.DataDir, parent)
		case parent != "" && unix.Access(parent, unix.W_OK) != nil:
			ck.bad("data_dir", "%s does not exist and %s is not writable", c.DataDir, parent)
		}
	case err != nil:
		ck.bad("data_dir", "%s: %v", c.DataDir, err)
	case !st.IsDir():
		ck.bad("data_dir", "%s is a file: want a directory", c.DataDir)
	case st.Mode().Perm()&0o022 != 0:
		// whoever can write there can put another database, or a link, in
		// the daemon's place
		ck.bad("data_dir", "%s is writable by its group or others (mode %04o): chmod 0750 it (the package's unit makes it so)", c.DataDir, st.Mode().Perm())
	case unix.Access(c.DataDir, unix.W_OK) != nil:
		ck.bad("data_dir", "%s is not writable by this user", c.DataDir)
		ck.errs[len(ck.errs)-1].Unwritable = true
	}
	tok := c.ListenTokenFile
	if tok == "" {
		tok = filepath.Join(c.DataDir, "listen_token")
	}
	if st, err := os.Stat(tok); err == nil && st.Mode().Perm()&0o004 != 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("listen_token_file %s can be read by others (mode %04o): whoever reads it can change plates and requeue bills; chmod 0600 it", tok, st.Mode().Perm()))
	}
}

// nearestExisting is the closest existing ancestor of path, and whether it
// is a directory.
func nearestExisting(path string) (string, bool) {
	for dir := filepath.Dir(filepath.Clean(path)); ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(dir); err == nil {
			return dir, st.IsDir()
		}
		if dir == "/" || dir == "." {
			return "", false
		}
	}
}

// ServiceGroup is the group the packaged unit runs in (Group=): the app
// secret file's group, readable by the service and nobody else.
const ServiceGroup = "pilebridge"

// secretModeWarning warns when the secret file can be read by others, or by
// a group that is neither the service's (group, when it exists: root
// running `check` judges the file as the service would) nor this process's.
func secretModeWarning(path, group string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	mode := st.Mode().Perm()
	if mode&0o004 != 0 {
		return fmt.Sprintf("platform.app_secret_file %s has mode %04o: anyone on the board can read the app secret; chmod 640 and chown root:%s", path, mode, group)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if mode&0o040 == 0 || !ok {
		return ""
	}
	gid := int(sys.Gid)
	if g, err := user.LookupGroup(group); err == nil && g.Gid == strconv.Itoa(gid) {
		return ""
	}
	if gid == os.Getegid() {
		return ""
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return ""
		}
	}
	name := strconv.Itoa(gid)
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	return fmt.Sprintf("platform.app_secret_file %s has mode %04o and group %s, which the service does not run in: that group can read the app secret; chown root:%s", path, mode, name, group)
}
