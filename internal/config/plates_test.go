package config

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The VIN table alone, as earlier versions had it, still reads; the
// sectioned form too; plates come out in normal form.
func TestPlatesBothForms(t *testing.T) {
	c, err := Parse([]byte(base+priced+"plates: {LSTOP103212132001: 川ａd66011}\n"), "c.yaml")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"LSTOP103212132001": "川AD66011"}, c.Plates.VINs)
	assert.Equal(t, 10*time.Minute, c.Plates.Window, "the default window")

	c, err = Parse([]byte(base+priced+`plates:
  window: 3m
  vins: {LSTOP103212132001: 川AD66011}
  cameras:
    - {serial: cam-1, from: [192.168.1.64], ports: ["P1/1"], channel: 1}
`), "c.yaml")
	require.NoError(t, err)
	assert.Equal(t, 3*time.Minute, c.Plates.Window)
	require.Len(t, c.Plates.Cameras, 1)
	assert.Equal(t, 1, *c.Plates.Cameras[0].Channel)
}

func TestPlatesMistakesNameTheirKey(t *testing.T) {
	_, err := Parse([]byte(base+priced+`plates:
  window: 48h
  vins: {LSTOP103212132001: 无牌}
  cameras:
    - {serial: "", from: [], ports: []}
    - {serial: cam-2, from: [camera.local], ports: ["P9/1"]}
  attendants:
    - {name: "", code: "12"}
    - {name: 王师傅, code: "480731"}
    - {name: Li, code: "480731"}
    - {name: Wu, code: "48 07 31"}
`), "c.yaml")
	require.Error(t, err)
	for _, want := range []string{
		`plates.attendants[0].name: "": want 1..32 characters`,
		"plates.attendants[0].code: want 6..16 letters or digits",
		"plates.attendants[2].code: the same as plates.attendants[1]'s",
		"plates.attendants[3].code: want 6..16 letters or digits",
		"plates.window: 48h0m0s: want 0..24h0m0s",
		"plates.vins.LSTOP103212132001: plate \"无牌\"",
		"plates.cameras[0].serial: required",
		"plates.cameras[0].from: required",
		"plates.cameras[0].ports: required",
		"plates.cameras[1].from[0]: \"camera.local\": want an IP address",
		"plates.cameras[1].ports[0]: \"P9/1\": no such port",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestCameraAllows(t *testing.T) {
	c := Camera{Serial: "s", From: []string{"192.168.1.64", "::1"}}
	assert.True(t, c.Allows(net.ParseIP("192.168.1.64"), ""))
	assert.True(t, c.Allows(net.ParseIP("::1"), "anything"), "no secret configured")
	assert.False(t, c.Allows(net.ParseIP("192.168.1.65"), ""))
	c.Secret = "k3y"
	assert.False(t, c.Allows(net.ParseIP("192.168.1.64"), ""), "the secret is required once set")
	assert.False(t, c.Allows(net.ParseIP("192.168.1.64"), "k3z"))
	assert.True(t, c.Allows(net.ParseIP("192.168.1.64"), "k3y"))
	assert.False(t, c.Allows(net.ParseIP("10.0.0.1"), "k3y"), "the secret does not replace the address")
}
