package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSuggestNamesTheClosestKnownKey(t *testing.T) {
	for path, want := range map[string]string{
		"platform.progres_interval":      "progress_interval",
		"buses[0].buad":                  "baud",
		"piles[2].ports[0].poll_intervl": "poll_interval",
		"statoin_uuid":                   "station_uuid",
		"platform.zzz":                   "",
		"nowhere.progres_interval":       "",
	} {
		assert.Equal(t, want, suggest(path), path)
	}
	assert.Equal(t, 1, editDistance("buad", "baud"))
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
}

// check names an unknown key by its full path with a suggestion, and a tab
// by what YAML wants instead.
func TestUnknownKeyAndTabAreExplained(t *testing.T) {
	_, err := Parse([]byte(base+priced+"session:\n  offline_aftr: 5s\n"), "c.yaml")
	assert.ErrorContains(t, err, "session.offline_aftr: unknown key")
	assert.ErrorContains(t, err, "did you mean offline_after?")
	_, err = Parse([]byte("station_uuid: x\n\tdata_dir: /tmp\n"), "c.yaml")
	assert.ErrorContains(t, err, "line 2: a tab character: YAML indents with spaces only")
}
