package cli

import (
	"bytes"
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHelpPrintsEveryFlag(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		var out bytes.Buffer
		fs := Flags("read", "pilebridge read --device DEV", "Reads one device.", &out)
		fs.String("device", "", "serial device or tcp://host:port")
		fs.Int("slave", 1, "slave id")
		err := fs.Parse([]string{arg})
		assert.True(t, errors.Is(err, flag.ErrHelp), arg)
		assert.Contains(t, out.String(), "usage: pilebridge read --device DEV")
		assert.Contains(t, out.String(), "Reads one device.")
		assert.Contains(t, out.String(), "serial device or tcp://host:port")
		assert.Contains(t, out.String(), "slave id")
	}
}

func TestWantsHelp(t *testing.T) {
	assert.True(t, WantsHelp([]string{"list", "--help"}))
	assert.True(t, WantsHelp([]string{"-h"}))
	assert.False(t, WantsHelp([]string{"retry", "help"}), "an order named help is not a flag")
	assert.False(t, WantsHelp([]string{"--config", "x.yaml"}))
}
