package station

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/pii"
	"pilebridge/internal/plate"
	"pilebridge/session"
)

// Camera pushes. A camera sends no token: a push is read only when it comes
// from an address configured for some camera (so nobody else's push, however
// large, is read at all), and taken only from an address and secret
// configured for the serial number it carries. Each maker's format is a
// dialect: how to read the body, how to answer so the camera's own log
// shows whether its read was used.

// maxPushBody bounds a push with pictures (Hikvision's multipart, Dahua's
// base64): they are read past and dropped.
const maxPushBody = 8 << 20

// keepPushes is how many of the latest camera pushes the status page shows.
const keepPushes = 20

type cameraDialect struct {
	maker  string
	read   func(r *http.Request) (plate.CameraRead, error)
	answer func(w http.ResponseWriter, status int, ok bool)
}

// cameraPush is one push as the status page shows it: whose, what became
// of it and why.
type cameraPush struct {
	At     time.Time `json:"at"`
	Maker  string    `json:"maker"`
	Camera string    `json:"camera"` // its serial number, or the address when it has none here
	From   string    `json:"from"`
	Plate  string    `json:"plate,omitempty"` // masked
	Result string    `json:"result"`          // taken, invalid, no_plate, refused, malformed
	Why    string    `json:"why,omitempty"`
}

// alarmInfoPlate: the AlarmInfoPlate JSON push (臻识/Vzenith and compatibles).
var alarmInfoPlate = cameraDialect{
	maker: "alarminfoplate",
	read: func(r *http.Request) (plate.CameraRead, error) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			return plate.CameraRead{}, err
		}
		return plate.ParseCameraPush(body, r.Header.Get("Content-Type"))
	},
	answer: func(w http.ResponseWriter, status int, ok bool) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write(plate.CameraAnswer(ok))
	},
}

// hikvision: ISAPI's EventNotificationAlert (ANPR), XML or multipart with
// pictures. The camera logs an upload that gets anything but 200 as failed.
var hikvision = cameraDialect{
	maker: "hikvision",
	read: func(r *http.Request) (plate.CameraRead, error) {
		return plate.ParseHikvision(io.LimitReader(r.Body, maxPushBody), r.Header.Get("Content-Type"))
	},
	answer: func(w http.ResponseWriter, status int, ok bool) {
		if !ok && status == http.StatusOK {
			status = http.StatusBadRequest
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, map[bool]string{true: "OK\n", false: "read not used\n"}[ok])
	},
}

// dahua: ITSAPI's TollgateInfo JSON push; the camera reads Result.
var dahua = cameraDialect{
	maker: "dahua",
	read: func(r *http.Request) (plate.CameraRead, error) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPushBody))
		if err != nil {
			return plate.CameraRead{}, err
		}
		return plate.ParseDahua(body, r.Header.Get("Content-Type"))
	},
	answer: func(w http.ResponseWriter, status int, ok bool) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		msg := map[bool]string{true: "ok", false: "read not used"}[ok]
		_ = json.NewEncoder(w).Encode(map[string]any{"Result": ok, "Message": msg})
	},
}

// fromCameraAddress: some configured camera pushes from addr.
func (h *plateHub) fromCameraAddress(addr net.IP) bool {
	for _, c := range h.cameras {
		if c.AllowsAddr(addr) {
			return true
		}
	}
	return false
}

// sameSerial compares serial numbers as cameras and people write them: a
// MAC address with colons or dashes, in either case.
func sameSerial(a, b string) bool {
	norm := func(s string) string {
		return strings.NewReplacer(":", "", "-", "").Replace(strings.ToLower(strings.TrimSpace(s)))
	}
	return norm(a) == norm(b)
}

// serveCamera answers one maker's push (POST /plates/camera[/SECRET] and
// the others in web.go).
func (h *plateHub) serveCamera(d cameraDialect) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		from := net.ParseIP(host)
		if !h.fromCameraAddress(from) {
			// not read at all: an unlisted address gets nothing parsed
			h.count(session.PlateFromCamera, "refused")
			h.note(cameraPush{Maker: d.maker, Camera: host, From: host, Result: "refused", Why: "address not configured for any camera"})
			h.logRefused(host, "camera push refused", errors.New("not from an address configured for a camera"), nil)
			d.answer(w, http.StatusForbidden, false)
			return
		}
		read, err := d.read(r)
		if errors.Is(err, plate.ErrNotANPR) {
			d.answer(w, http.StatusOK, true) // a heartbeat or another event: nothing to take
			return
		}
		if read.Serial == "" {
			why := bounded(fmt.Sprint(err), 120)
			h.count(session.PlateFromCamera, "malformed")
			h.note(cameraPush{Maker: d.maker, Camera: host, From: host, Result: "malformed", Why: why})
			h.logRefused(host, "camera push refused: not a push the bridge reads", errors.New(why), nil)
			d.answer(w, http.StatusBadRequest, false)
			return
		}
		serial := bounded(read.Serial, 64)
		secret := r.PathValue("secret")
		var ports []string
		known := false
		for _, c := range h.cameras {
			if !sameSerial(c.Serial, read.Serial) {
				continue
			}
			known = true
			if !c.Allows(from, secret) || (c.Channel != nil && *c.Channel != read.Channel) {
				continue
			}
			ports = append(ports, c.Ports...)
		}
		if len(ports) == 0 {
			why := "serial not configured"
			if known {
				why = "not from the address, secret or channel configured for this camera"
			}
			h.count(session.PlateFromCamera, "refused")
			h.note(cameraPush{Maker: d.maker, Camera: serial, From: host, Result: "refused", Why: why})
			h.logRefused(host, "camera push refused", errors.New(why), func(e *zerolog.Event) {
				e.Str("serial", serial).Bool("serial_configured", known)
			})
			d.answer(w, http.StatusForbidden, false)
			return
		}
		if err != nil {
			result := "invalid"
			if errors.Is(err, plate.ErrNoPlate) {
				result = "no_plate"
			}
			h.count(session.PlateFromCamera, result)
			why := err.Error() // without the licence itself: the log masks plates
			if i := strings.Index(why, "\": "); i >= 0 {
				why = why[i+3:]
			}
			why = bounded(why, 120)
			h.note(cameraPush{Maker: d.maker, Camera: serial, From: host, Plate: pii.Plate(read.Raw), Result: result, Why: why})
			h.logRefused(host, "camera read not taken", errors.New(why), func(e *zerolog.Event) {
				e.Str("serial", serial).Str("licence", pii.Plate(read.Raw))
			})
			// the camera's own log shows the read was not used (one that
			// retries sends it a few times more, each refused and counted)
			d.answer(w, http.StatusOK, false)
			return
		}
		at := h.now() // the board's clock: cameras' clocks drift
		for _, p := range ports {
			h.put(p, session.PlateRead{Plate: read.Plate, Source: session.PlateFromCamera, At: at, Confidence: read.Confidence})
		}
		h.note(cameraPush{Maker: d.maker, Camera: serial, From: host, Plate: pii.Plate(read.Plate), Result: "taken"})
		h.log.Debug().Str("serial", serial).Str("plate", pii.Plate(read.Plate)).Int("confidence", read.Confidence).
			Strs("ports", ports).Msg("plate read")
		d.answer(w, http.StatusOK, true)
	}
}

// serveKeepAlive answers Dahua's heartbeat (POST /NotificationInfo/KeepAlive)
// from a camera's address.
func (h *plateHub) serveKeepAlive(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if !h.fromCameraAddress(net.ParseIP(host)) {
		dahua.answer(w, http.StatusForbidden, false)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	dahua.answer(w, http.StatusOK, true)
}

// note keeps a push for the status page.
func (h *plateHub) note(p cameraPush) {
	p.At = h.now().UTC()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pushes) >= keepPushes {
		h.pushes = append(h.pushes[:0], h.pushes[1:]...)
	}
	h.pushes = append(h.pushes, p)
}

// Pushes are the latest camera pushes, newest first.
func (h *plateHub) Pushes() []cameraPush {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]cameraPush, len(h.pushes))
	for i, p := range h.pushes {
		out[len(out)-1-i] = p
	}
	return out
}
