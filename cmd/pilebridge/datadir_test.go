package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

// Issue 26, item 4: the data directory deleted under the running daemon, or
// a file renamed over its database, with 4 bills waiting for the platform:
// the daemon notices (a health reason, one error line), puts its open
// database back at the path, and after kill -9 and a restart all 4 bills
// are delivered, each its meter delta (before: 0 of 4).
func TestDataDirGoneUnderTheDaemon(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"rm -rf", "renamed over"} {
		t.Run(how, func(t *testing.T) {
			s := newStation(t, "listen: 127.0.0.1:0\n")
			s.plat.Inject(simulator.PlatformFault{Kind: "502", Count: 1_000_000}) // the platform is down
			b := s.startBridge()
			addr := s.listenAddr()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.charging(ctx)
			var want []int64
			for i := 0; i < 4; i++ {
				start := s.meterWh()
				s.startSession(60000)
				s.waitFor("charging", 10*time.Second, func() bool { return strings.Count(s.log(), `"to":"charging"`) > i })
				time.Sleep(300 * time.Millisecond)
				s.setAndSee(meter.StatusFinished, 0, 1, "finished")
				want = append(want, s.meterWh()-start)
				s.setAndSee(meter.StatusIdle, 0, 0, "idle")
			}
			s.waitFor("4 bills queued", 10*time.Second, func() bool { return strings.Count(s.log(), `"kind":"closed"`) == 4 })

			data := filepath.Join(s.dir, "data")
			if how == "rm -rf" {
				require.NoError(t, os.RemoveAll(data))
			} else {
				// an old copy put in its place (a backup restored by hand)
				backups, err := filepath.Glob(filepath.Join(data, "backup", "pilebridge-*.db"))
				require.NoError(t, err)
				require.NotEmpty(t, backups)
				require.NoError(t, os.Rename(backups[len(backups)-1], filepath.Join(data, "pilebridge.db")))
			}
			s.waitFor("the daemon to say so", 15*time.Second, func() bool {
				resp, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "was removed or replaced while open")
			})
			assert.Equal(t, 1, strings.Count(s.log(), "was removed or replaced while open"), "said once")
			_ = b.stop(syscall.SIGKILL)

			s.plat.ClearFaults()
			b = s.startBridge()
			s.waitFor("the 4 bills delivered", 15*time.Second, func() bool { return len(s.finals()) == 4 })
			require.NoError(t, b.stop(syscall.SIGTERM))
			finals := s.finals()
			sort.Slice(finals, func(i, j int) bool { return finals[i].Order < finals[j].Order }) // orders sort by start
			var got []int64
			for _, f := range finals {
				got = append(got, f.Quantity)
			}
			assert.Equal(t, want, got, "each its meter delta")
		})
	}
}
