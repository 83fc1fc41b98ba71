package station

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/config"
	"pilebridge/meter"
	"pilebridge/session"
	"pilebridge/uploader"
)

// The board keeps a port's times and SOC in place from poll to poll; a
// snapshot taken before a poll still shows what it showed, and polls
// allocate nothing for them.
func TestBoardSnapshotIsNotChangedByLaterPolls(t *testing.T) {
	ds, err := uploader.NewDeviceSync(nil, time.Minute, zerolog.Nop())
	require.NoError(t, err)
	b := newStatusBoard(ds, "test")
	b.addPort("D/1", config.Pile{DeviceNo: "D"}, config.Port{PortNo: "1"})
	t0 := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	sess := &session.Session{Order: "O1", StartTime: t0, Periods: map[string]*session.Billed{}}
	r := meter.Reading{Time: t0.Add(time.Second), HasSOC: true, SOC: 40, HasEnergy: true}
	b.observe("D/1", session.Charging, sess, r, nil)

	snap := b.snapshot()
	require.Len(t, snap, 1)

	sess2 := &session.Session{Order: "O2", StartTime: t0.Add(time.Hour), Periods: map[string]*session.Billed{}}
	r2 := meter.Reading{Time: t0.Add(time.Hour + time.Second), HasSOC: true, SOC: 80, HasEnergy: true}
	b.observe("D/1", session.Charging, sess2, r2, nil)

	assert.Equal(t, t0.Add(time.Second), *snap[0].LastReading)
	assert.Equal(t, 40, *snap[0].SOC)
	assert.Equal(t, t0, *snap[0].StartedAt)
	now := b.snapshot()[0]
	assert.Equal(t, t0.Add(time.Hour+time.Second), *now.LastReading)
	assert.Equal(t, 80, *now.SOC)
	assert.Equal(t, t0.Add(time.Hour), *now.StartedAt)

	// no SOC in a reading: none shown, and the earlier snapshot keeps its own
	r2.HasSOC = false
	b.observe("D/1", session.Charging, sess2, r2, nil)
	assert.Nil(t, b.snapshot()[0].SOC)
	assert.Equal(t, 40, *snap[0].SOC)

	allocs := testing.AllocsPerRun(100, func() { b.observe("D/1", session.Charging, sess2, r2, nil) })
	assert.Zero(t, allocs, "a poll of a charging port allocates nothing on the board")
}
