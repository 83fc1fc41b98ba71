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
	"github.com/stretchr/testify/require"
)

// A failure every second for ten minutes, then recovery: a start line,
// repeats with the count after 1, 3 and 7 minutes, and an end line; a day
// of it is about 30 lines; a changed error is said at once.
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
	require.Equal(t, 5, len(lines), "%s", buf.String())
	assert.Contains(t, lines[0], `"failures":1`)
	for i, since := range []int{60, 120, 240} {
		assert.Contains(t, lines[i+1], fmt.Sprintf(`"since_last_line":%d,`, since), "repeat %d", i+1)
	}
	assert.Contains(t, lines[4], `"message":"line down: recovered"`)
	assert.Contains(t, lines[4], `"failures":600`)

	buf.Reset()
	for s := 0; s < 86400; s++ {
		f.Fail(t0.Add(time.Duration(s)*time.Second), err, nil)
	}
	f.OK(t0.Add(86400 * time.Second))
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Equal(t, 30, len(lines), "a day: 1, 3, 7, 15, 31 and 63 minutes, then hourly")
	assert.Contains(t, lines[len(lines)-2], `"since_last_line":3600,`, "an hour apart at most")

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
