package faillog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
)

// A failure every second for ten minutes, then recovery: a start line, one
// a minute with the count, and an end line; a changed error is said at once.
func TestTenMinutesOfFailuresAreADozenLines(t *testing.T) {
	var buf bytes.Buffer
	f := New(zerolog.New(&buf), "line down", 0)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := errors.New("open /dev/ttyUSB0: no such file")
	for s := 0; s < 600; s++ {
		f.Fail(t0.Add(time.Duration(s)*time.Second), err, nil)
	}
	f.OK(t0.Add(600 * time.Second))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.LessOrEqual(t, len(lines), 12)
	assert.GreaterOrEqual(t, len(lines), 10, "one a minute while it lasts")
	assert.Contains(t, lines[0], `"failures":1`)
	assert.Contains(t, lines[1], `"since_last_line":60`)
	assert.Contains(t, lines[len(lines)-1], `"message":"line down: recovered"`)
	assert.Contains(t, lines[len(lines)-1], `"failures":600`)

	buf.Reset()
	f.Fail(t0, err, nil)
	f.Fail(t0.Add(time.Second), errors.New("permission denied"), nil)
	f.Fail(t0.Add(2*time.Second), errors.New("permission denied"), nil)
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Len(t, lines, 2, "start and change, not the repeat")
	assert.Contains(t, lines[1], `"changed":true`)

	// the same fault named differently on every try (a temporary file's
	// time in its name) is not a change
	buf.Reset()
	f.OK(t0.Add(3 * time.Second))
	buf.Reset()
	for s := 0; s < 600; s++ {
		path := &fs.PathError{Op: "write", Path: fmt.Sprintf("backup/pilebridge-%d.db.tmp", s), Err: syscall.ENOSPC}
		f.Fail(t0.Add(time.Duration(s)*time.Second), fmt.Errorf("backup to backup: %w", path), nil)
	}
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.LessOrEqual(t, len(lines), 11, "a new file name on every try is the same fault:\n%s", strings.Join(lines[:min(3, len(lines))], "\n"))
	f.Fail(t0.Add(601*time.Second), fmt.Errorf("backup: %w", &fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}), nil)
	assert.Contains(t, buf.String(), `"changed":true`, "another cause is a change")

	buf.Reset()
	f.OK(t0.Add(602 * time.Second))
	f.OK(t0.Add(603 * time.Second))
	assert.Equal(t, 1, strings.Count(buf.String(), "\n"), "recovery said once")
}
