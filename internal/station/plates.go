package station

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/config"
	"pilebridge/internal/pii"
	"pilebridge/internal/plate"
	"pilebridge/session"
	"pilebridge/uploader"
)

// maxReadsPerPort bounds what a chatty camera can make the board hold.
const maxReadsPerPort = 32

// plateHub keeps the plates read at each port's bay for the window: the
// runner asks it for a session's plate (session.PlateBook). It is in
// memory: a read joins a session within seconds, and the session stores
// its plate at once.
type plateHub struct {
	window  time.Duration
	cameras []config.Camera
	ports   map[string]bool
	log     zerolog.Logger
	now     func() time.Time
	// attach puts a plate on the port's bill that waits for one (the
	// outbox's AttachPlate), returning its order
	attach func(port, plate, source string, now time.Time) (string, error)

	mu     sync.Mutex
	reads  map[string][]heldRead // port -> reads, oldest first
	counts map[[2]string]uint64  // {source, result} -> reads
}

func newPlateHub(cfg *config.Config, log zerolog.Logger, attach func(port, plate, source string, now time.Time) (string, error)) *plateHub {
	return &plateHub{window: cfg.Plates.Window, cameras: cfg.Plates.Cameras, ports: cfg.PortKeys(),
		log: log, now: time.Now, attach: attach, reads: map[string][]heldRead{}, counts: map[[2]string]uint64{}}
}

func (h *plateHub) count(source session.PlateSource, result string) {
	h.mu.Lock()
	h.counts[[2]string{string(source), result}]++
	h.mu.Unlock()
}

// Counts are the reads taken or refused so far, by source and result.
func (h *plateHub) Counts() map[[2]string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[[2]string]uint64, len(h.counts))
	for k, v := range h.counts {
		out[k] = v
	}
	return out
}

// heldRead is a read and the session it went to (by its opening), if any:
// a read that went to one session never goes to a later one.
type heldRead struct {
	session.PlateRead
	claimed time.Time
}

// put keeps r for port, forgetting reads older than the window, and gives
// it to the port's bill that waits for a plate, if one does.
func (h *plateHub) put(port string, r session.PlateRead) {
	h.keep(port, r)
	if h.attach == nil {
		return
	}
	order, err := h.attach(port, r.Plate, string(r.Source), h.now())
	switch {
	case err == nil:
		h.claim(port, r, time.Unix(0, 1)) // the bill's: not a later session's
		h.log.Info().Str("port", port).Str("order", order).Str("plate", pii.Plate(r.Plate)).Str("source", string(r.Source)).
			Msg("plate joined the bill that waited for it")
	case !errors.Is(err, uploader.ErrNoBillWaiting):
		h.log.Error().Err(err).Str("port", port).Msg("plate for a waiting bill not stored")
	}
}

func (h *plateHub) keep(port string, r session.PlateRead) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cut := h.now().Add(-h.window)
	keep := h.reads[port][:0]
	for _, old := range h.reads[port] {
		if !old.At.Before(cut) {
			keep = append(keep, old)
		}
	}
	keep = append(keep, heldRead{PlateRead: r})
	if len(keep) > maxReadsPerPort {
		keep = keep[len(keep)-maxReadsPerPort:]
	}
	h.reads[port] = keep
	h.counts[[2]string{string(r.Source), "taken"}]++
}

// PlateFor implements session.PlateBook: the best read for port since
// the window before opened (the strongest source, then the latest), not
// counting reads that went to another session.
func (h *plateHub) PlateFor(port string, opened time.Time) (session.PlateRead, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	since := opened.Add(-h.window)
	best := -1
	reads := h.reads[port]
	for i, r := range reads {
		if r.At.Before(since) || (!r.claimed.IsZero() && !r.claimed.Equal(opened)) {
			continue
		}
		if best < 0 || r.Better(reads[best].Plate, reads[best].Source, reads[best].At) {
			best = i
		}
	}
	if best < 0 {
		return session.PlateRead{}, false
	}
	reads[best].claimed = opened
	return reads[best].PlateRead, true
}

// claim marks the read r of port as gone to the session opened at opened.
func (h *plateHub) claim(port string, r session.PlateRead, opened time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.reads[port] {
		if h.reads[port][i].PlateRead == r {
			h.reads[port][i].claimed = opened
		}
	}
}

// serveCamera is POST /plates/camera[/SECRET]: a camera's AlarmInfoPlate
// push. A camera sends no token: the push is taken only from an address
// listed for its serial number (and with its secret, where one is set).
func (h *plateHub) serveCamera(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, ok bool) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write(plate.CameraAnswer(ok))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		answer(http.StatusBadRequest, false)
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	from := net.ParseIP(host)
	read, err := plate.ParseCameraPush(body)
	if read.Serial == "" {
		h.count(session.PlateFromCamera, "malformed")
		h.log.Warn().Err(err).Str("from", host).Msg("camera push refused")
		answer(http.StatusBadRequest, false)
		return
	}
	secret := r.PathValue("secret")
	var ports []string
	known := false
	for _, c := range h.cameras {
		if c.Serial != read.Serial {
			continue
		}
		known = true
		if !c.Allows(from, secret) || (c.Channel != nil && *c.Channel != read.Channel) {
			continue
		}
		ports = append(ports, c.Ports...)
	}
	if len(ports) == 0 {
		h.count(session.PlateFromCamera, "refused")
		h.log.Warn().Str("serial", read.Serial).Str("from", host).Bool("serial_configured", known).
			Msg("camera push refused: not from an address (and secret) configured for this camera")
		answer(http.StatusForbidden, false)
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
		h.log.Warn().Str("serial", read.Serial).Str("licence", pii.Plate(read.Raw)).Str("why", why).Msg("camera read not taken")
		answer(http.StatusOK, true) // the push itself was right: the camera must not send it again
		return
	}
	at := h.now() // the board's clock: cameras' clocks drift
	for _, p := range ports {
		h.put(p, session.PlateRead{Plate: read.Plate, Source: session.PlateFromCamera, At: at, Confidence: read.Confidence})
	}
	h.log.Info().Str("serial", read.Serial).Str("plate", pii.Plate(read.Plate)).Int("confidence", read.Confidence).
		Strs("ports", ports).Msg("plate read")
	answer(http.StatusOK, true)
}

// PlateInput is POST /plates: a plate for a port from a parking system, a
// script or the attendant.
type PlateInput struct {
	Port       string    `json:"port"`
	Plate      string    `json:"plate"`
	Time       time.Time `json:"time,omitempty"`   // when it was read; default now
	Source     string    `json:"source,omitempty"` // api (default) or attendant
	Confidence int       `json:"confidence,omitempty"`
}

// servePlate is POST /plates (with the local API's token).
func (h *plateHub) servePlate(w http.ResponseWriter, r *http.Request) {
	var in PlateInput
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		http.Error(w, fmt.Sprintf("want JSON {port, plate, time, source, confidence}: %v", err), http.StatusBadRequest)
		return
	}
	src := session.PlateSource(strings.ToLower(in.Source))
	switch src {
	case "":
		src = session.PlateFromAPI
	case session.PlateFromAPI, session.PlateFromAttendant:
	default:
		http.Error(w, fmt.Sprintf("source %q: want api or attendant", in.Source), http.StatusBadRequest)
		return
	}
	if !h.ports[in.Port] {
		http.Error(w, fmt.Sprintf("port %q: no such port (want device_no/port_no)", in.Port), http.StatusBadRequest)
		return
	}
	p, err := plate.Normalize(in.Plate)
	if err != nil {
		h.count(src, "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	at := in.Time
	if now := h.now(); at.IsZero() || at.After(now) {
		at = now
	}
	h.put(in.Port, session.PlateRead{Plate: p, Source: src, At: at, Confidence: in.Confidence})
	h.log.Info().Str("port", in.Port).Str("plate", pii.Plate(p)).Str("source", string(src)).Msg("plate read")
	writeJSON(w, map[string]string{"port": in.Port, "plate": p, "source": string(src)})
}

// serveForm is POST /plates/form: the attendant's entry from the status
// page (the guard has checked the form's token); back to the page.
func (h *plateHub) serveForm(w http.ResponseWriter, r *http.Request) {
	port := r.PostFormValue("port")
	if !h.ports[port] {
		http.Error(w, fmt.Sprintf("port %q: no such port", port), http.StatusBadRequest)
		return
	}
	p, err := plate.Normalize(r.PostFormValue("plate"))
	if err != nil {
		h.count(session.PlateFromAttendant, "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.put(port, session.PlateRead{Plate: p, Source: session.PlateFromAttendant, At: h.now()})
	h.log.Info().Str("port", port).Str("plate", pii.Plate(p)).Str("source", "attendant").Msg("plate read")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
