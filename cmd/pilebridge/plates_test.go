package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/meter"
	"pilebridge/simulator"
)

const platesConfig = `listen: 127.0.0.1:0
parking_reduction: true
plates:
  cameras:
    - {serial: cam-bay1, from: [127.0.0.1], ports: ["E2E01/1"]}
    - {serial: cam-elsewhere, from: [192.0.2.7], ports: ["E2E01/1"]}
`

// acSession takes the AC pile (it reports no VIN) through a session at
// powerW and returns the meter's delta: the pile draws nothing while
// starting and once finished.
func (s *testStation) acSession(powerW int64, during func()) int64 {
	s.t.Helper()
	setAC := func(st meter.Status, w, stop int64) {
		require.NoError(s.t, s.pile.Update(func(r *meter.Reading) {
			r.Status, r.PowerW, r.StopCode, r.VIN = st, w, stop, ""
		}))
	}
	closed := strings.Count(s.log(), `"message":"session closed"`)
	start := s.meterWh()
	seen := strings.Count(s.log(), `"to":"starting"`)
	setAC(meter.StatusStarting, 0, 0)
	s.waitFor("the bridge to see the port starting", 10*time.Second, func() bool {
		return strings.Count(s.log(), `"to":"starting"`) > seen
	})
	setAC(meter.StatusCharging, powerW, 0)
	during()
	setAC(meter.StatusFinished, 0, 1)
	delta := s.meterWh() - start
	s.waitFor("the session closed", 10*time.Second, func() bool {
		return strings.Count(s.log(), `"message":"session closed"`) > closed
	})
	setAC(meter.StatusIdle, 0, 0)
	return delta
}

// Parking-fee reduction on an AC pile: the bay's camera pushes the plate
// before the car plugs in; the final bill at the independent stand-in
// carries it, and so does every progress record once it is known. A push
// from an address not configured for the camera, or from a camera not
// configured at all, is refused.
func TestCameraPlateReachesTheBill(t *testing.T) {
	t.Parallel()
	s := newStationWith(t, "ref-ac", platesConfig)
	s.startBridge()
	push := "http://" + s.listenAddr() + "/plates/camera"
	ctxCharging(t, s)
	ctx := context.Background()

	for _, serial := range []string{"cam-elsewhere", "cam-unknown"} {
		code, answer, err := simulator.Camera{Serial: serial}.Push(ctx, push, "川A12345", 90, time.Now())
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, code, "%s: %s", serial, answer)
		assert.Contains(t, string(answer), `"info":"no"`)
	}
	// a camera set to base64, reading a full-width plate
	code, answer, err := simulator.Camera{Serial: "cam-bay1", Base64: true}.Push(ctx, push, "川ＡＤ６６０１１", 96, time.Now())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", answer)
	assert.JSONEq(t, `{"Response_AlarmInfoPlate":{"info":"ok"}}`, string(answer))

	// the car parks, then plugs in: 30 s later (3 s in the race pass)
	gap := 30 * time.Second
	if testing.Short() {
		gap = 3 * time.Second
	}
	time.Sleep(gap)
	delta := s.acSession(7000, func() { time.Sleep(2500 * time.Millisecond) })
	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	f := s.finals()[0]
	assert.Equal(t, delta, f.Quantity, "bill equals the meter's delta")
	assert.Empty(t, f.VIN, "an AC pile reports no VIN")
	assert.Equal(t, "川AD66011", f.Plate, "the bay camera's plate, normalised")
	for _, b := range s.bills() {
		assert.Equal(t, "川AD66011", b.Plate, "every record of the order carries it (read before the session opened)")
	}
	assert.Zero(t, s.plat.Rejected())
	log := s.log()
	assert.NotContains(t, log, "川AD66011", "the log masks plates")
	assert.Contains(t, log, "川A******")
	assert.Contains(t, log, "camera push refused")
	assert.NotContains(t, log, "no plate: this bill cannot earn", "the bill had its plate")
}

// An attendant's entry (POST /plates with the token, as `pilebridge
// plate` sends it) wins over the camera's read; a read without the token
// is refused; a read that is not a plate is refused with the reason.
func TestAttendantPlateWinsOverCamera(t *testing.T) {
	t.Parallel()
	s := newStationWith(t, "ref-ac", platesConfig)
	s.startBridge()
	base := "http://" + s.listenAddr()
	ctxCharging(t, s)
	token := s.token()
	post := func(body, tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/plates", bytes.NewBufferString(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	delta := s.acSession(7000, func() {
		code, _, err := simulator.Camera{Serial: "cam-bay1"}.Push(context.Background(), base+"/plates/camera", "川A12345", 90, time.Now())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		s.waitFor("the camera's plate on a progress record", 10*time.Second, func() bool {
			for _, b := range s.bills() {
				if b.Plate == "川A12345" {
					return true
				}
			}
			return false
		})
		code, body := post(`{"port":"E2E01/1","plate":"川B54321","source":"attendant"}`, "")
		assert.Equal(t, http.StatusUnauthorized, code, body)
		code, body = post(`{"port":"E2E01/1","plate":"川B5432","source":"attendant"}`, token)
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Contains(t, body, "6 characters")
		// a parking system's extra fields are ignored, and a body claiming
		// the attendant's rank gets the API's: the endpoint decides
		code, body = post(`{"port":"E2E01/1","plate":"川B77777","source":"attendant","lane":"east","extra":{"x":1}}`, token)
		assert.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, `"source": "api"`)
		code, body = post(`{"port":"E2E01/9","plate":"川B54321"}`, token)
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Contains(t, body, "no such port")
		// the attendant, with the CLI (it reads the daemon's token)
		out, err := exec.Command(bridgeBin, "plate", "E2E01/1", "川b·54321", "--config", s.config).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, "port E2E01/1: plate 川B54321 (attendant)\n", string(out))
		// the camera reads again: the attendant's entry stays
		code, _, err = simulator.Camera{Serial: "cam-bay1"}.Push(context.Background(), base+"/plates/camera", "川A12345", 99, time.Now())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		time.Sleep(1500 * time.Millisecond)
	})
	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	f := s.finals()[0]
	assert.Equal(t, delta, f.Quantity)
	assert.Equal(t, "川B54321", f.Plate, "the attendant's entry")
}

// With parking-fee reduction on, a bill that ends without a plate waits
// for one (plates.final_wait, 2 min by default): the parking system's read
// at the exit, after the car unplugged, goes on it, even across a kill -9
// during the wait; the bay camera's read of the next car does not. Without any plate it goes after the wait, and the ledger says
// "no plate".
func TestFinalBillWaitsForThePlate(t *testing.T) {
	t.Parallel()
	s := newStationWith(t, "ref-ac", platesConfig)
	b := s.startBridge()
	ctxCharging(t, s)
	delta := s.acSession(7000, func() { time.Sleep(2 * time.Second) })
	time.Sleep(time.Second)
	assert.Empty(t, s.finals(), "the bill waits for its plate")
	list, _, code := runCLI(t, "outbox", "list", "--config", s.config)
	require.Equal(t, 0, code)
	assert.Contains(t, list, "waits for a plate until", "held, not failing: outbox list says so")
	assert.Contains(t, list, "QUEUE")
	require.NoError(t, b.cmd.Process.Kill()) // kill -9 during the wait
	_ = b.cmd.Wait()
	s.startBridge()
	base := "http://" + s.listenAddr()
	late := 40 * time.Second // the plate comes 40 s after the session ended
	if testing.Short() {
		late = 3 * time.Second
	}
	time.Sleep(late)
	assert.Empty(t, s.finals(), "still waiting after the restart")
	// the car has unplugged: what the bay's camera reads now may be the
	// next car, and does not go on the waiting bill
	code, _, err := simulator.Camera{Serial: "cam-bay1"}.Push(context.Background(), base+"/plates/camera", "川A54321", 90, time.Now())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	time.Sleep(time.Second)
	assert.Empty(t, s.finals(), "a camera read after the unplug is not the waiting bill's")
	// the parking system reads the car at the exit barrier and says so
	req, _ := http.NewRequest(http.MethodPost, base+"/plates", strings.NewReader(`{"port":"E2E01/1","plate":"川A12345"}`))
	req.Header.Set("Authorization", "Bearer "+s.token())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s.waitFor("the bill with its late plate", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	f := s.finals()[0]
	assert.Equal(t, "川A12345", f.Plate)
	assert.Equal(t, delta, f.Quantity)
	out, err := exec.Command(bridgeBin, "sessions", "--csv", "--config", s.config).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "川A12345,api,")
}

func TestBillWithoutPlateGoesAfterTheWait(t *testing.T) {
	t.Parallel()
	s := newStationWith(t, "ref-ac", platesConfig+"  final_wait: 4s\n")
	s.startBridge()
	s.listenAddr()
	ctxCharging(t, s)
	delta := s.acSession(7000, func() { time.Sleep(2 * time.Second) })
	ended := time.Now()
	s.waitFor("the bill, once the wait is over", 15*time.Second, func() bool { return len(s.finals()) == 1 })
	assert.GreaterOrEqual(t, time.Since(ended), 3*time.Second, "it waited")
	f := s.finals()[0]
	assert.Empty(t, f.Plate)
	assert.Equal(t, delta, f.Quantity)
	assert.Contains(t, s.log(), "no plate came within plates.final_wait")
	out, err := exec.Command(bridgeBin, "sessions", "--csv", "--config", s.config).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), ",no plate,")
}

const attendantConfig = `listen: 127.0.0.1:0
parking_reduction: true
plates:
  final_wait: 1m
  attendants:
    - {name: 王师傅, code: "480731"}
    - {name: Li, code: "k7p2x9"}
`

// The attendant page over plain HTTP, as a phone's browser posts it
// without JavaScript: a wrong code is refused in the page's language with
// what was typed kept; after attendantTries wrong codes the address waits;
// the right code puts the plate on the port's session, the ledger names
// who; the status page links every port to it, and no form on any page
// asks for the API token.
func TestAttendantPageOverHTTP(t *testing.T) {
	t.Parallel()
	s := newStationWith(t, "ref-ac", attendantConfig)
	s.startBridge()
	base := "http://" + s.listenAddr()
	ctxCharging(t, s)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(port, plate, code, lang string) (*http.Response, string) {
		form := url.Values{"port": {port}, "plate": {plate}, "code": {code}, "lang": {lang}}
		req, _ := http.NewRequest(http.MethodPost, base+"/attendant", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base) // a browser says where the form came from
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	page := get(t, base+"/?lang=en", "").body
	assert.Contains(t, page, `href="attendant?port=E2E01%2f1&amp;lang=en"`, "the status page links each port to the attendant page")
	assert.NotContains(t, page, `name="token"`, "no page asks for the API token")
	att := get(t, base+"/attendant?lang=en&port=E2E01/1", "").body
	assert.NotContains(t, att, `http-equiv="refresh"`, "the attendant page does not reload itself")
	assert.NotContains(t, att, `name="token"`)
	assert.Contains(t, att, "E2E01/1 — idle", "listed before plug-in")

	s.acSession(7000, func() {
		resp, body := post("E2E01/1", "川A·12345", "000000", "zh")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Contains(t, body, "值班码不对", "refused in the page's language")
		assert.Contains(t, body, `value="川A·12345"`, "what was typed is kept")
		assert.Contains(t, body, `name="lang" value="zh"`)
		resp, body = post("E2E01/1", "川A12", "480731", "en")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body, "is not a plate")
		resp, _ = post("E2E01/1", "川A·12345", "480731", "en")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		loc := resp.Header.Get("Location")
		assert.Contains(t, loc, "lang=en", "?lang kept")
		done := get(t, base+loc, "").body
		assert.Contains(t, done, "川A***** set on E2E01/1", "done, the plate masked")
		// a crafted link puts no words of its own on the board's page
		crafted := get(t, base+"/attendant?lang=en&set=E2E01/1&plate=Call+110+now&order=x", "").body
		assert.NotContains(t, crafted, "Call 110")
		assert.NotContains(t, crafted, `id="done"`)
		s.waitFor("the plate on the port", 10*time.Second, func() bool {
			return strings.Contains(get(t, base+"/status", s.token()).body, `"plate": "川A12345"`)
		})
	})
	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	assert.Equal(t, "川A12345", s.finals()[0].Plate)
	st := get(t, base+"/status", s.token()).body
	assert.Contains(t, st, `"plate_by": "王师傅"`, "the ledger names the attendant")
	assert.Contains(t, st, `"plate_source": "attendant"`)

	// a guesser: locked out after a few wrong codes, even with the right one
	for i := 0; i < 5; i++ {
		post("E2E01/1", "川A12345", fmt.Sprintf("99999%d", i), "en")
	}
	resp, body := post("E2E01/1", "川A12345", "k7p2x9", "en")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Contains(t, body, "Too many wrong codes")
	assert.Contains(t, s.log(), "attendant code refused")
	assert.NotContains(t, s.log(), "480731", "codes are never logged")
}

// Issue 27: the cameras car parks have. Four cars, one after another at
// the same bay, each read by another camera: an AlarmInfoPlate camera
// sending GBK, one writing the colour with the licence (蓝川A22222), a
// Hikvision camera's ISAPI ANPR push (multipart, with pictures) and a
// Dahua camera's ITSAPI push (base64 pictures). Each final carries its own
// car's plate. A push the bridge cannot use is answered so the camera's log
// shows it, counted, and shown on the status page with why.
func TestEveryCameraMakersPlateReachesItsBill(t *testing.T) {
	t.Parallel()
	s := newStationWith(t, "ref-ac", `listen: 127.0.0.1:0
parking_reduction: true
plates:
  cameras:
    - {serial: cam-bay1, from: [127.0.0.1], ports: ["E2E01/1"]}
    - {serial: 44-19-B6-0A-1B-2C, from: [127.0.0.1], ports: ["E2E01/1"]}
    - {serial: 6J0A1B2PAZ00042, from: [127.0.0.1], ports: ["E2E01/1"]}
`)
	s.startBridge()
	base := "http://" + s.listenAddr()
	ctxCharging(t, s)
	ctx := context.Background()
	cars := []struct {
		cam        simulator.Camera
		path, sent string
		want       string
	}{
		{simulator.Camera{Serial: "cam-bay1", GBK: true}, "/plates/camera", "川A11111", "川A11111"},
		{simulator.Camera{Serial: "cam-bay1"}, "/plates/camera", "蓝川A22222", "川A22222"},
		{simulator.Camera{Maker: "hikvision", Serial: "44:19:b6:0a:1b:2c"}, "/plates/hikvision", "川A33333", "川A33333"},
		{simulator.Camera{Maker: "dahua", Serial: "6J0A1B2PAZ00042"}, "/NotificationInfo/TollgateInfo", "川A44444", "川A44444"},
	}
	for i, car := range cars {
		delta := s.acSession(7000, func() {
			code, answer, err := car.cam.Push(ctx, base+car.path, car.sent, 95, time.Now())
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, "%s: %s", car.cam.Maker, answer)
			time.Sleep(2 * time.Second)
		})
		s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == i+1 })
		f := s.finals()[i]
		assert.Equal(t, delta, f.Quantity, "bill equals the meter's delta")
		assert.Equal(t, car.want, f.Plate, "car %d (%s %s): its own plate", i+1, car.cam.Maker, car.sent)
	}

	// unusable: a Hikvision read that is not a plate, a Dahua push without
	// its DeviceID; the answers say so
	code, answer, err := simulator.Camera{Maker: "hikvision", Serial: "44:19:b6:0a:1b:2c"}.Push(ctx, base+"/plates/hikvision", "A5", 90, time.Now())
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, code, "%s", answer)
	code, answer, err = simulator.Camera{Maker: "dahua"}.Push(ctx, base+"/NotificationInfo/TollgateInfo", "川A44444", 90, time.Now())
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, string(answer), `"Result":false`)

	get := func(path string) string {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return b.String()
	}
	metrics := get("/metrics")
	assert.Contains(t, metrics, `pilebridge_plate_reads_total{result="invalid",source="camera"} 1`)
	assert.Contains(t, metrics, `pilebridge_plate_reads_total{result="malformed",source="camera"} 1`)
	page := get("/?lang=en")
	assert.Contains(t, page, "Latest camera pushes")
	assert.Contains(t, page, "hikvision 44:19:b6:0a:1b:2c")
	assert.Contains(t, page, "not a plate: ")
	assert.Contains(t, page, "not understood: dahua push: no SnapInfo.DeviceID")
	assert.NotContains(t, page, "川A44444", "the page masks plates")
}
