package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
)

// A session's plate: an attendant's entry wins over a camera's or the VIN
// table's; among equals the later read wins; a camera read does not give
// way to the VIN table when the VIN shows up later.
func TestSetPlateRules(t *testing.T) {
	f := newFeed(t, PortConfig{Plates: map[string]string{"LSVIN00000000001": "川A12345"}})
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 10})
	m := f.m
	at := f.now
	assert.True(t, m.SetPlate(PlateRead{Plate: "川B11111", Source: PlateFromCamera, At: at}))
	assert.False(t, m.SetPlate(PlateRead{Plate: "川B22222", Source: PlateFromCamera, At: at.Add(-time.Second)}), "an older camera read")
	assert.True(t, m.SetPlate(PlateRead{Plate: "川B33333", Source: PlateFromCamera, At: at.Add(time.Second)}), "a newer camera read")
	f.with(meter.Reading{Status: meter.StatusCharging, EnergyWh: 11, VIN: "LSVIN00000000001"})
	assert.Equal(t, "川B33333", m.Session().Plate, "the VIN table is weaker than a camera")
	assert.True(t, m.SetPlate(PlateRead{Plate: "川C44444", Source: PlateFromAttendant, At: at}))
	assert.False(t, m.SetPlate(PlateRead{Plate: "川B55555", Source: PlateFromCamera, At: at.Add(time.Hour)}), "a camera does not overrule the attendant")
	assert.False(t, m.SetPlate(PlateRead{Plate: "川C44444", Source: PlateFromAttendant, At: at.Add(time.Hour)}), "the same plate again changes nothing")
	evs := f.with(meter.Reading{Status: meter.StatusFinished, EnergyWh: 12})
	require.NotEmpty(t, evs)
	fin := f.final()
	assert.Equal(t, "川C44444", fin.Plate)
	assert.Equal(t, PlateFromAttendant, fin.PlateSource)
	assert.False(t, m.SetPlate(PlateRead{Plate: "川D66666", Source: PlateFromAttendant, At: f.now}), "no open session")
}

// The plate and its source survive the store (a restart keeps them).
func TestPlateSurvivesTheCodec(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 0, 0, 123e6, time.UTC)
	s := &Session{Order: "O1", State: Charging, Plate: "川AD66011", PlateSource: PlateFromCamera, PlateAt: at}
	c, err := newCodec()
	require.NoError(t, err)
	b, err := c.encode(s)
	require.NoError(t, err)
	got, err := c.decode(b)
	require.NoError(t, err)
	assert.Equal(t, "川AD66011", got.Plate)
	assert.Equal(t, PlateFromCamera, got.PlateSource)
	assert.True(t, at.Equal(got.PlateAt), "%v != %v", at, got.PlateAt)
}
