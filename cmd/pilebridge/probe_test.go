package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

type probeFound struct {
	Baud     int      `json:"baud"`
	Parity   string   `json:"parity"`
	Slave    int      `json:"slave"`
	Answer   string   `json:"answer"`
	Profiles []string `json:"profiles"`
}

func probeJSON(t *testing.T, args ...string) []probeFound {
	out, errs, code := runCLI(t, append([]string{"scan", "--probe", "--json"}, args...)...)
	require.Equal(t, 0, code, errs)
	var found []probeFound
	require.NoError(t, json.Unmarshal([]byte(out), &found), out)
	return found
}

// scan --probe finds the simulator's slaves on a line paced at 19200 baud,
// with the profile their registers fit. A pty cannot enforce baud or
// parity: every setting reaches the simulator, so the test checks the
// slaves and profiles found, and that --first stops at the first setting
// that has them; telling settings apart needs a real line.
func TestScanProbeOnPty(t *testing.T) {
	t.Parallel()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	prof, _ := reg.Get("ref-ac")
	link := filepath.Join(t.TempDir(), "tty")
	line, err := simulator.OpenPty(link)
	require.NoError(t, err)
	defer line.Close()
	srv := simulator.NewServer(zerolog.Nop())
	srv.Baud = 19200 // replies paced like a 19200 baud line; set before serving
	for _, id := range []uint8{3, 7, 200} {
		_, err := simulator.NewPile(prof, meter.Ratios{}, srv.AddSlave(id).Bank, 123456)
		require.NoError(t, err)
	}
	go srv.AttachPty(line)

	found := probeJSON(t, "--device", link, "--bauds", "9600,19200", "--parity", "N,E", "--slaves", "1-10,200", "--first")
	require.Len(t, found, 3, "%+v", found)
	for i, id := range []int{3, 7, 200} {
		assert.Equal(t, id, found[i].Slave)
		assert.Equal(t, 9600, found[i].Baud, "--first: the first setting that answered")
		assert.Equal(t, "N", found[i].Parity)
		assert.Equal(t, "answers: register 0 read", found[i].Answer)
		assert.Contains(t, found[i].Profiles, "ref-ac")
	}
	// without --first every setting is tried (and, on a pty, answers)
	found = probeJSON(t, "--device", link, "--bauds", "9600,19200", "--parity", "N,E", "--slaves", "3", "--profile", "ref-ac")
	assert.Len(t, found, 4)

	out, errs, code := runCLI(t, "scan", "--probe", "--device", link, "--bauds", "19200", "--parity", "N,E", "--slaves", "1-8")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "19200 8E1")
	assert.Contains(t, out, "4 responder(s)")
	// not a terminal: a line per setting tells what it tries and what it found so far
	assert.Contains(t, errs, "probe: trying 19200 8N1 (1 of 2 settings), 8 slave ids; 0 responder(s) so far")
	assert.Contains(t, errs, "probe: trying 19200 8E1 (2 of 2 settings), 8 slave ids; 2 responder(s) so far")

	_, errs, code = runCLI(t, "scan", "--probe", "--device", link, "--slaves", "0-300")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `--slaves: "0-300": want slave ids 1..247`)
}

// Over a Modbus TCP gateway there is no baud to find: the slaves are.
func TestScanProbeOverTCP(t *testing.T) {
	t.Parallel()
	reg, err := meter.LoadRegistry("")
	require.NoError(t, err)
	srv := simulator.NewServer(zerolog.Nop())
	for _, id := range []uint8{2, 5} {
		prof, _ := reg.Get("dtsu666")
		sl := srv.AddSlave(id)
		p, err := simulator.NewPile(prof, meter.Ratios{}, sl.Bank, 4242)
		require.NoError(t, err)
		sl.Source = p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go srv.ServeTCP(ln, false)

	found := probeJSON(t, "--device", "tcp://"+ln.Addr().String(), "--slaves", "1-6")
	require.Len(t, found, 2)
	assert.Equal(t, 2, found[0].Slave)
	assert.Equal(t, 5, found[1].Slave)
	assert.Zero(t, found[0].Baud)
	assert.Contains(t, found[0].Answer, "answers (exception 2: it has no register 0, which is normal", "no register 0, but there: said in plain words")
	assert.Contains(t, found[0].Profiles, "dtsu666")
}
