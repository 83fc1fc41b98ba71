package session_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"pilebridge/session"
	"pilebridge/uploader"
)

const (
	killPorts      = 64
	killCloseEvery = 7 // commits per session: the last one closes it with its bill
)

func killPortsMap() map[string]uploader.Port {
	ports := map[string]uploader.Port{}
	for i := 0; i < killPorts; i++ {
		ports[fmt.Sprintf("K%02d/1", i)] = uploader.Port{DeviceNo: fmt.Sprintf("K%02d", i), PortNo: "1", EnergyCode: "CN_AC"}
	}
	return ports
}

// TestHelperCommitter is the process the kill test kills: 64 ports
// committing as fast as they can through the group commit, each printing an
// acknowledgement once Commit has returned ("reported stored").
func TestHelperCommitter(t *testing.T) {
	path := os.Getenv("PILEBRIDGE_COMMIT_HELPER")
	if path == "" {
		t.Skip("run by TestKillDuringGroupCommit")
	}
	_, _, st := openStore(t, path, session.BoltOptions(), killPortsMap())
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for i := 0; i < killPorts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("K%02d/1", i)
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for n := 1; ; n++ {
				order := fmt.Sprintf("K%02d-%04d", i, n)
				for seq := 1; seq <= killCloseEvery; seq++ {
					s := &session.Session{Order: order, Seq: seq, Periods: map[string]*session.Billed{}}
					s.Energy.CountedMWh = int64(seq) * 1000
					var evs []session.Event
					if seq == killCloseEvery {
						s, evs = nil, []session.Event{{Kind: session.EventClosed, Reason: session.ReasonCompleted, Order: order, QuantityWh: int64(seq)}}
					}
					if err := st.Commit(key, s, evs); err != nil {
						panic(err)
					}
					mu.Lock()
					fmt.Fprintf(out, "%s %s %d\n", key, order, seq)
					out.Flush() // the acknowledgement leaves the process before the next commit
					mu.Unlock()
					// ports out of step, as polls are: the kill can land in
					// any phase of a shared transaction
					time.Sleep(time.Duration(rng.IntN(25_000)) * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
}

// kill -9 while 64 ports commit through the shared transactions: every
// commit acknowledged is in the file, and a closed session and its bill are
// there together or not at all.
func TestKillDuringGroupCommit(t *testing.T) {
	t.Parallel()
	if testing.Short() || os.Getenv("PILEBRIDGE_QEMU") != "" {
		t.Skip("re-executes the test binary")
	}
	rng := rand.New(rand.NewPCG(2026, 1129))
	for round := 0; round < 8; round++ {
		path := filepath.Join(t.TempDir(), "db")
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCommitter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PILEBRIDGE_COMMIT_HELPER="+path)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		type ack struct {
			order string
			seq   int
		}
		last := map[string]ack{}
		acks := 0
		sc := bufio.NewScanner(stdout)
		require.True(t, sc.Scan(), "the helper acknowledged nothing")
		killAfter := time.Duration(50+rng.IntN(1500)) * time.Millisecond
		killer := time.AfterFunc(killAfter, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		for ok := true; ok; ok = sc.Scan() {
			var key string
			var a ack
			if _, err := fmt.Sscanf(sc.Text(), "%s %s %d", &key, &a.order, &a.seq); err != nil {
				t.Fatalf("helper said %q", sc.Text())
			}
			last[key] = a
			acks++
		}
		killer.Stop()
		err = cmd.Wait()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, "signal: killed", exit.Error(), "the helper died before it was killed")

		db, box, st := openStore(t, path, session.BoltOptions(), killPortsMap())
		open, err := st.Open()
		require.NoError(t, err)
		pending, _, _, err := box.List(false)
		require.NoError(t, err)
		bills := map[string]int64{}
		for _, e := range pending {
			require.True(t, e.Record.Terminal())
			_, dup := bills[e.Record.Order]
			require.False(t, dup, "two bills for %s", e.Record.Order)
			bills[e.Record.Order] = e.Record.QuantityWh
		}
		for key, a := range last {
			var port, n int
			_, err := fmt.Sscanf(a.order, "K%02d-%04d", &port, &n)
			require.NoError(t, err)
			// every earlier session of the port was acknowledged closed
			for k := 1; k < n; k++ {
				q, ok := bills[fmt.Sprintf("K%02d-%04d", port, k)]
				require.True(t, ok, "%s: bill of session %d lost", key, k)
				require.EqualValues(t, killCloseEvery, q)
			}
			s := open[key]
			_, billed := bills[a.order]
			switch {
			case a.seq == killCloseEvery: // acknowledged closed
				require.True(t, billed, "%s: acknowledged bill of %s lost", key, a.order)
				require.True(t, s == nil || s.Order != a.order, "%s: %s both billed and open", key, a.order)
			case s != nil && s.Order == a.order: // still open: at or past the acknowledgement
				require.False(t, billed, "%s: %s both billed and open", key, a.order)
				require.GreaterOrEqual(t, s.Seq, a.seq, "%s: acknowledged reading lost", key)
				require.EqualValues(t, int64(s.Seq)*1000, s.Energy.CountedMWh)
			default: // closed after the last acknowledgement, with its bill
				require.True(t, billed, "%s: %s neither open nor billed (acknowledged at %d)", key, a.order, a.seq)
			}
		}
		t.Logf("round %d: killed after %s, %d acknowledgements; %d open sessions and %d bills on reopen, all consistent", round, killAfter, acks, len(open), len(bills))
		require.NoError(t, db.Close())
	}
}
