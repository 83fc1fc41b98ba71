package uploader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"pilebridge/simulator"
	"pilebridge/uploader"
)

const (
	appID  = "op_test"
	secret = "test-secret"
)

// standIn is the platform stand-in on a real loopback HTTP server that can be
// taken down and brought back on the same address (an outage).
type standIn struct {
	t    testing.TB
	plat *simulator.Platform
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func newStandIn(t testing.TB) *standIn {
	p, err := simulator.NewPlatform(appID, secret, "")
	require.NoError(t, err)
	s := &standIn{t: t, plat: p}
	s.up("127.0.0.1:0")
	t.Cleanup(s.down)
	return s
}

func (s *standIn) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	require.NoError(s.t, err)
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.plat}
	srv := s.srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

func (s *standIn) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *standIn) url() string { return "http://" + s.addr }

// byOrder returns what the platform accepted: per order, the kinds in arrival order.
func (s *standIn) byOrder() map[string][]string {
	out := map[string][]string{}
	for _, r := range s.plat.Received(simulator.PathReplenish) {
		var m struct {
			Order    string `json:"order"`
			State    int    `json:"state"`
			Quantity int    `json:"quantity"`
		}
		require.NoError(s.t, json.Unmarshal(r.Body, &m))
		out[m.Order] = append(out[m.Order], fmt.Sprintf("%d:%d", m.State, m.Quantity))
	}
	return out
}

type rig struct {
	db     *bbolt.DB
	box    *uploader.Outbox
	sender *uploader.Sender
	cancel context.CancelFunc
	done   chan struct{}
}

var nopLog = zerolog.Nop()

func clientFor(baseURL string) *uploader.Client {
	c, err := uploader.NewClient(uploader.ClientConfig{BaseURL: baseURL, AppID: appID, AppSecret: secret, StationUUID: "st", Timeout: 300 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	return c
}

func openRig(t testing.TB, path, baseURL string, max int) *rig {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	if max == 0 {
		max = 100_000
	}
	box, err := uploader.NewOutbox(db, max, nopLog)
	require.NoError(t, err)
	s, err := uploader.NewSender(box, clientFor(baseURL), uploader.SenderConfig{Workers: 4, Batch: 64, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, nopLog)
	require.NoError(t, err)
	return &rig{db: db, box: box, sender: s}
}

func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); r.sender.Run(ctx) }()
}

func (r *rig) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
	r.db.Close()
}

func rec(order string, kind uploader.Kind, q int64) uploader.Record {
	state := uploader.StateCharging
	switch kind {
	case uploader.KindFinal:
		state = uploader.StateFinished
	case uploader.KindStartFailed:
		state = uploader.StateStartFailed
	}
	now := time.Now()
	return uploader.Record{Kind: kind, Order: order, StartTime: now.Add(-time.Hour), EndTime: now, Mobile: "local",
		QuantityWh: q, State: state, StateDesc: "x", DeviceNo: "D1", PortNo: "1", EnergyCode: "CN_AC"}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOutboxCoalescesProgressAndKeepsOrder(t *testing.T) {
	si := newStandIn(t)
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	for q := int64(1); q <= 3; q++ {
		require.NoError(t, r.box.Enqueue(rec("A", uploader.KindProgress, q)))
	}
	require.NoError(t, r.box.Enqueue(rec("B", uploader.KindProgress, 7)))
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindFinal, 4)))
	require.NoError(t, r.box.Enqueue(rec("B", uploader.KindFinal, 8)))
	require.NoError(t, r.box.Enqueue(rec("C", uploader.KindStartFailed, 0)))
	assert.EqualValues(t, 5, pendingCount(t, r.box), "A's three progress records coalesce to one")
	r.start()
	waitFor(t, "all delivered", func() bool { return pendingCount(t, r.box) == 0 })
	assert.Equal(t, map[string][]string{"A": {"2:3", "3:4"}, "B": {"2:7", "3:8"}, "C": {"-1:0"}}, si.byOrder())
}

// A long outage with sessions finishing during it: after recovery every
// record arrives, in order per order.
func TestOutboxSurvivesOutage(t *testing.T) {
	si := newStandIn(t)
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	r.start()
	addr := si.addr
	si.down()
	for i := 0; i < 20; i++ {
		o := fmt.Sprintf("O%02d", i)
		require.NoError(t, r.box.Enqueue(rec(o, uploader.KindProgress, int64(i))))
		require.NoError(t, r.box.Enqueue(rec(o, uploader.KindFinal, int64(i+100))))
	}
	time.Sleep(500 * time.Millisecond) // many failed rounds
	assert.EqualValues(t, 40, pendingCount(t, r.box))
	failed := r.sender.Stats().Failed
	assert.Positive(t, failed)
	// backoff 10 ms doubling to 100 ms: about 8 rounds in 500 ms. One probe a
	// round, not one post per order (20 a round: 160).
	assert.LessOrEqual(t, failed, int64(15), "one probe per backoff round during an outage")
	si.up(addr)
	waitFor(t, "delivery after the outage", func() bool { return pendingCount(t, r.box) == 0 })
	got := si.byOrder()
	require.Len(t, got, 20)
	for i := 0; i < 20; i++ {
		assert.Equal(t, []string{fmt.Sprintf("2:%d", i), fmt.Sprintf("3:%d", i+100)}, got[fmt.Sprintf("O%02d", i)])
	}
}

func TestOutboxRetriesPlatformFailures(t *testing.T) {
	si := newStandIn(t)
	for _, k := range []string{"1500", "502", "500", "garbage"} {
		si.plat.Inject(simulator.PlatformFault{Kind: k, Count: 2})
	}
	si.plat.Inject(simulator.PlatformFault{Kind: "slow", Count: 1, Delay: 500 * time.Millisecond})
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindProgress, 1)))
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindFinal, 2)))
	r.start()
	waitFor(t, "delivery", func() bool { return pendingCount(t, r.box) == 0 })
	assert.Equal(t, map[string][]string{"A": {"2:1", "3:2"}}, si.byOrder())
	assert.GreaterOrEqual(t, r.sender.Stats().Failed, int64(9))
}

func TestOutboxParksRejectedAndContinues(t *testing.T) {
	si := newStandIn(t)
	si.plat.Inject(simulator.PlatformFault{Kind: "401", Count: 1})
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindFinal, 5)))
	require.NoError(t, r.box.Enqueue(rec("B", uploader.KindFinal, 6)))
	r.start()
	waitFor(t, "queue drained", func() bool { return pendingCount(t, r.box) == 0 })
	_, parked, _, err := r.box.List(false)
	require.NoError(t, err)
	require.Len(t, parked, 1, "exactly the record that got the 401 is parked")
	rejected := parked[0].Record.Order
	assert.Contains(t, parked[0].LastError, "401")
	other := map[string]string{"A": "B", "B": "A"}[rejected]
	assert.Len(t, si.byOrder(), 1)
	assert.Len(t, si.byOrder()[other], 1, "the queue went on past the parked record")

	n, dropped, err := r.box.Requeue(rejected)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Zero(t, dropped)
	waitFor(t, "requeued delivered", func() bool { return len(si.byOrder()[rejected]) == 1 })
	// The stand-in has the record before the outbox has stored the answer:
	// wait for the outbox's own account, not the platform's.
	var parkedNow, delivered []uploader.Entry
	waitFor(t, "delivery recorded", func() bool {
		_, parkedNow, delivered, err = r.box.List(true)
		return err == nil && len(delivered) == 2
	})
	assert.Empty(t, parkedNow)
	assert.Equal(t, 1, len(si.byOrder()[rejected]), "delivered once")
}

func TestOutboxLimitNeverDropsFinals(t *testing.T) {
	si := newStandIn(t)
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 5)
	defer r.stop()
	for i := 0; i < 4; i++ {
		require.NoError(t, r.box.Enqueue(rec(fmt.Sprintf("F%d", i), uploader.KindFinal, int64(i))))
	}
	for i := 0; i < 10; i++ {
		require.NoError(t, r.box.Enqueue(rec(fmt.Sprintf("P%d", i), uploader.KindProgress, int64(i))))
	}
	require.NoError(t, r.box.Enqueue(rec("F9", uploader.KindFinal, 9)))
	require.NoError(t, r.box.Enqueue(rec("F10", uploader.KindFinal, 10)))
	pending, _, _, err := r.box.List(false)
	require.NoError(t, err)
	finals := 0
	for _, e := range pending {
		if e.Record.Terminal() {
			finals++
		}
	}
	assert.Equal(t, 6, finals, "every final kept")
	assert.Len(t, pending, 6, "progress records dropped to make room")
	r.start()
	waitFor(t, "drained", func() bool { return pendingCount(t, r.box) == 0 })
	assert.Len(t, si.byOrder(), 6)
}

// Records committed before a crash are delivered by the next process.
func TestOutboxDeliversAfterRestart(t *testing.T) {
	si := newStandIn(t)
	path := filepath.Join(t.TempDir(), "db")
	r := openRig(t, path, si.url(), 0)
	var orders []string
	for i := 0; i < 50; i++ {
		o := fmt.Sprintf("R%02d", i)
		orders = append(orders, o)
		require.NoError(t, r.box.Enqueue(rec(o, uploader.KindFinal, int64(i))))
	}
	r.stop() // never sent
	r2 := openRig(t, path, si.url(), 0)
	defer r2.stop()
	assert.EqualValues(t, 50, pendingCount(t, r2.box))
	r2.start()
	waitFor(t, "drained", func() bool { return pendingCount(t, r2.box) == 0 })
	got := si.byOrder()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, orders, keys)
}

// A parked progress record is not requeued once its order has been billed:
// the platform keeps the latest record, and that must stay the bill.
func TestRequeueDropsProgressOfBilledOrders(t *testing.T) {
	si := newStandIn(t)
	si.plat.Inject(simulator.PlatformFault{Kind: "401", Count: 100})
	r := openRig(t, filepath.Join(t.TempDir(), "db"), si.url(), 0)
	defer r.stop()
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindProgress, 1)))
	require.NoError(t, r.box.Enqueue(rec("A", uploader.KindFinal, 2)))
	require.NoError(t, r.box.Enqueue(rec("B", uploader.KindProgress, 3)))
	r.start()
	waitFor(t, "all parked", func() bool { return pendingCount(t, r.box) == 0 })
	si.plat.ClearFaults()
	n, dropped, err := r.box.Requeue("")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "A's final and B's progress")
	assert.Equal(t, 1, dropped, "A's progress is obsolete")
	waitFor(t, "delivered", func() bool { return pendingCount(t, r.box) == 0 && len(si.byOrder()) == 2 })
	assert.Equal(t, map[string][]string{"A": {"3:2"}, "B": {"2:3"}}, si.byOrder())
}

// A redirect from base_url is never followed: the signed body (VIN, plate,
// mobile) would go elsewhere, and an answer from there is not the
// platform's. The record stays pending and reaches the real stand-in once
// it stops redirecting.
func TestRedirectIsNotFollowed(t *testing.T) {
	for _, kind := range []string{"302", "307"} {
		t.Run(kind, func(t *testing.T) {
			si, elsewhere := newStandIn(t), newStandIn(t)
			si.plat.Inject(simulator.PlatformFault{Kind: kind, Count: 3, Location: elsewhere.url()})
			var logBuf syncBuffer
			db, err := bbolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
			require.NoError(t, err)
			defer db.Close()
			box, err := uploader.NewOutbox(db, 100_000, nopLog)
			require.NoError(t, err)
			s, err := uploader.NewSender(box, clientFor(si.url()), uploader.SenderConfig{Workers: 4, Batch: 64, BaseBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, zerolog.New(&logBuf))
			require.NoError(t, err)
			require.NoError(t, box.Enqueue(rec("R", uploader.KindFinal, 7)))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			waitFor(t, "three redirects answered", func() bool { return s.Stats().Failed >= 3 })
			assert.Empty(t, elsewhere.plat.Received(""), "nothing reached the redirect's target")
			waitFor(t, "delivery to base_url", func() bool { return pendingCount(t, box) == 0 })
			assert.Equal(t, map[string][]string{"R": {"3:7"}}, si.byOrder())
			assert.Empty(t, elsewhere.plat.Received(""))
			assert.Contains(t, logBuf.String(), "redirected to")
			assert.Contains(t, logBuf.String(), elsewhere.url())
		})
	}
}

// syncBuffer is a log sink the sender's goroutine writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pending is the outbox's pending count; a failed read fails the test.
func pendingCount(t testing.TB, box *uploader.Outbox) int64 {
	n, err := box.Pending()
	require.NoError(t, err)
	return n
}
