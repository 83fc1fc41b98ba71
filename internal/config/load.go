package config

import (
	"errors"
	"fmt"
	"os"
)

// Load reads, defaults and validates a config file.
func Load(path string) (*Config, error) {
	c, err := LoadAll(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadToRead is Load for a command that only reads the store (`sessions`,
// `outbox list`): a data_dir it cannot write is no mistake to it.
func LoadToRead(path string) (*Config, error) {
	c, err := LoadAll(path)
	var errs Errors
	if err == nil || !errors.As(err, &errs) {
		return c, err
	}
	var left Errors
	for _, e := range errs {
		if !e.Unwritable {
			left = append(left, e)
		}
	}
	if len(left) > 0 {
		return nil, left
	}
	return c, nil
}

// Parse is Load on bytes; name is used in errors.
func Parse(data []byte, name string) (*Config, error) {
	c, err := ParseAll(data, name)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadAll is Load that also returns what could be read of a file with
// mistakes, so that the caller's own checks (tariff, profiles) can report
// theirs in the same run; the config is nil only when the file is not YAML.
func LoadAll(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Key: "(file)", Msg: err.Error()}}
	}
	c, err := ParseAll(data, path)
	if c != nil {
		if w := inlineSecretWarning(path, c); w != "" {
			c.Warnings = append(c.Warnings, w)
		}
	}
	return c, err
}

// ParseAll is LoadAll on bytes: every mistake of the file at once, those
// of the file itself (Decode) and those against this host (Resolve).
func ParseAll(data []byte, name string) (*Config, error) {
	c, err := Decode(data, name)
	if c == nil {
		return nil, err
	}
	var errs Errors
	if err != nil && !errors.As(err, &errs) {
		return c, err
	}
	said := map[string]bool{}
	for _, e := range errs {
		said[e.Key] = true
	}
	for _, e := range c.Resolve() {
		if !said[e.Key] {
			e.File = name
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// inlineSecretWarning warns when the app secret is written in a config file
// that others on the board can read.
func inlineSecretWarning(path string, c *Config) string {
	if c.Platform.AppSecret == "" || c.Platform.AppSecretFile != "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o044 == 0 {
		return ""
	}
	return fmt.Sprintf("platform.app_secret is written in %s, which has mode %04o: others on the board can read the app secret; move it to app_secret_file (root:pilebridge 0640) or chmod 600 the config", path, st.Mode().Perm())
}
