package station

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"pilebridge/internal/config"
	"pilebridge/internal/faillog"
	"pilebridge/internal/pii"
	"pilebridge/internal/plate"
	"pilebridge/session"
	"pilebridge/uploader"
)

// maxReadsPerPort bounds what a chatty camera can make the board hold: the
// distinct plates kept per bay.
const maxReadsPerPort = 32

// plateHub keeps the plates read at each port's bay for the window: the
// runner asks it for a session's plate (session.PlateBook) and tells it when
// a session ends and when the car leaves. It is in memory: a read joins a
// session within seconds, and the session stores its plate at once.
//
// The joining rules (docs/plates.md): a read goes only to the session of
// the car that was at the bay when it was made. Reads made before a session
// ended, or before the car that had it unplugged, go to that session or to
// nobody: they never reach a later one. A camera pushing the same plate
// again and again is one read with a count; the session takes the best
// source, then the plate read most often, then the latest. A plate that
// belonged to an ended session is not taken for the next one while the
// window lasts.
type plateHub struct {
	window  time.Duration
	cameras []config.Camera
	ports   map[string]bool
	log     zerolog.Logger
	now     func() time.Time
	// attach puts a plate on the port's bill that waits for one (the
	// outbox's AttachPlate), returning its order
	attach func(port, plate, source, by string, now time.Time) (string, error)

	mu      sync.Mutex
	bays    map[string]*bay
	counts  map[[2]string]uint64        // {source, result} -> reads
	refused map[string]*faillog.Failure // by the pushing address: a line a minute at most each
	pushes  []cameraPush                // the latest camera pushes, newest last (the status page)
}

// maxRefusedAddrs bounds the addresses whose refused pushes are logged
// apart; the rest share one line.
const maxRefusedAddrs = 64

// logRefused says a push from addr was refused, at most once a minute per
// address (with the count since), every field bounded.
func (h *plateHub) logRefused(addr, what string, err error, fields func(*zerolog.Event)) {
	h.mu.Lock()
	f := h.refused[addr]
	if f == nil {
		if len(h.refused) >= maxRefusedAddrs {
			addr = "(other addresses)"
			f = h.refused[addr]
		}
		if f == nil {
			f = faillog.New(h.log.With().Str("from", addr).Logger(), what, 0)
			h.refused[addr] = f
		}
	}
	h.mu.Unlock()
	f.Fail(h.now(), err, fields)
}

// bounded cuts s to n characters for a log line.
func bounded(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// bay is what the hub knows of one port's bay.
type bay struct {
	reads []heldRead // distinct plates by source, oldest first
	// cutoff: reads made before it belong to an ended session (or its car
	// that has since left): never to a later one
	cutoff time.Time
	ended  bool                  // a session ended and its car has not left yet
	gone   map[string]*gonePlate // plates read of ended sessions' cars
}

// gonePlate is a plate read of a car whose session ended. Its own plate
// (the one its session took) is not taken for a later session; the others
// are misreads of it (or of cars passing by), which a later car's own
// plate, read again and again, outnumbers: they are kept for the record,
// not held against a later car (whose plate, in a fleet, may well be one
// of them).
type gonePlate struct {
	n     int
	own   bool // the ended session's plate when it ended
	took  bool // its plate for a while (a first read, later outnumbered)
	since time.Time
}

// tookFor is how long a plate an ended session had for a while, but not at
// its end, is held against later sessions: the car drives off within it,
// and a later car whose plate that early read happened to be is not barred
// for the whole window.
const tookFor = 2 * time.Minute

// heldRead is a plate read at a bay: its latest read, how often it was read,
// and the session it went to (by its opening), if any.
type heldRead struct {
	session.PlateRead
	n       int
	claimed time.Time // the session (by its opening) whose best read it is now
	took    time.Time // a session it was the best read of at some time
}

func newPlateHub(cfg *config.Config, log zerolog.Logger, attach func(port, plate, source, by string, now time.Time) (string, error)) *plateHub {
	return &plateHub{window: cfg.Plates.Window, cameras: cfg.Plates.Cameras, ports: cfg.PortKeys(),
		log: log, now: time.Now, attach: attach, bays: map[string]*bay{}, counts: map[[2]string]uint64{},
		refused: map[string]*faillog.Failure{}}
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

func (h *plateHub) bay(port string) *bay {
	b := h.bays[port]
	if b == nil {
		b = &bay{gone: map[string]*gonePlate{}}
		h.bays[port] = b
	}
	return b
}

// put keeps r for port and gives it to the port's bill that waits for a
// plate, if one does: a camera's read only while the car of that bill is
// still at the bay (before the unplug), any other source's at once.
func (h *plateHub) put(port string, r session.PlateRead) (attachedTo string) {
	h.mu.Lock()
	b := h.bay(port)
	h.forget(b, r.At)
	attachable := r.Source != session.PlateFromCamera || b.ended
	if r.Source == session.PlateFromCamera && (b.ended || b.isGone(r.Plate)) {
		// the car of the session that ended is still there (its reads end
		// at the unplug), or drives off
		b.setAside(r.Plate, 1, false, r.At)
		h.counts[[2]string{string(r.Source), "previous_car"}]++
	} else {
		b.keep(r)
		h.counts[[2]string{string(r.Source), "taken"}]++
	}
	h.mu.Unlock()
	if h.attach == nil || !attachable {
		return ""
	}
	order, err := h.attach(port, r.Plate, string(r.Source), r.By, h.now())
	switch {
	case err == nil:
		h.mu.Lock()
		b.setAside(r.Plate, 1, true, r.At) // the ended session's: not a later one's
		b.drop(r.Plate)
		h.mu.Unlock()
		h.log.Info().Str("port", port).Str("order", order).Str("plate", pii.Plate(r.Plate)).Str("source", string(r.Source)).
			Msg("plate joined the bill that waited for it")
		return order
	case !errors.Is(err, uploader.ErrNoBillWaiting):
		h.log.Error().Err(err).Str("port", port).Msg("plate for a waiting bill not stored")
	}
	return ""
}

// forget drops what the window has passed.
func (h *plateHub) forget(b *bay, now time.Time) {
	cut := now.Add(-h.window)
	keep := b.reads[:0]
	for _, old := range b.reads {
		if !old.At.Before(cut) {
			keep = append(keep, old)
		}
	}
	b.reads = keep
	for p, g := range b.gone {
		if g.since.Before(cut) {
			delete(b.gone, p)
		}
	}
}

// setAside notes n reads of plate as an ended session's car's.
func (b *bay) setAside(plate string, n int, own bool, at time.Time) {
	g := b.gone[plate]
	if g == nil {
		g = &gonePlate{since: at}
		b.gone[plate] = g
	}
	g.n += n
	g.own = g.own || own
	if at.After(g.since) {
		g.since = at
	}
}

// keep adds r to the bay's reads: a plate already held from the same source
// is read once more.
func (b *bay) keep(r session.PlateRead) {
	for i := range b.reads {
		if b.reads[i].Plate == r.Plate && b.reads[i].Source == r.Source {
			b.reads[i].n++
			if r.At.After(b.reads[i].At) {
				b.reads[i].At, b.reads[i].Confidence = r.At, r.Confidence
			}
			return
		}
	}
	b.reads = append(b.reads, heldRead{PlateRead: r, n: 1})
	if len(b.reads) > maxReadsPerPort {
		b.reads = b.reads[len(b.reads)-maxReadsPerPort:]
	}
}

func (b *bay) drop(plate string) {
	b.reads = slices.DeleteFunc(b.reads, func(r heldRead) bool { return r.Plate == plate })
}

// isGone says p is the plate an ended session ended with: not taken for a
// later session while the window lasts. A misread of it as the car drives
// off is read once or twice: the plate the next car is read most often as
// wins over it (PlateFor).
func (b *bay) isGone(p string) bool {
	g := b.gone[p]
	return g != nil && g.own
}

// minTookReads: a plate an ended session had for a while (before a better
// read or source replaced it) is taken for a later session within tookFor
// only when read this often since: the departing car is read once or twice
// as it drives off, a car at the bay again and again.
const minTookReads = 3

// heldAgainst says read r, as PlateFor weighs it, is the departing car's.
func (b *bay) heldAgainst(r heldRead) bool {
	g := b.gone[r.Plate]
	return g != nil && g.took && r.At.Sub(g.since) < tookFor && r.n < minTookReads
}

// PlateFor implements session.PlateBook: for the session opened at
// opened, the best read made since the window before it and since the last
// session at the bay ended (or its car left), that no other session took:
// the strongest source, then the plate read most often, then the latest.
func (h *plateHub) PlateFor(port string, opened time.Time) (session.PlateRead, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bay(port)
	if b.ended && opened.After(b.cutoff) {
		// a session opened after the last one ended: its car is at the bay
		// now, whether or not the unplug between them was seen (a poll that
		// missed it); what the cameras read from here is this car
		b.ended = false
	}
	since := opened.Add(-h.window)
	if b.cutoff.After(since) {
		since = b.cutoff
	}
	best := -1
	for i, r := range b.reads {
		if r.At.Before(since) || (!r.claimed.IsZero() && !r.claimed.Equal(opened)) {
			continue
		}
		if r.Source == session.PlateFromCamera && (b.isGone(r.Plate) || b.heldAgainst(r)) {
			continue
		}
		if best < 0 || better(r, b.reads[best]) {
			best = i
		}
	}
	if best < 0 {
		return session.PlateRead{}, false
	}
	// only the session's present best is its own: an earlier best (a first
	// read that was a misread) goes back to being nobody's, so that it is not
	// held against the next car when the session ends
	for i := range b.reads {
		if i != best && b.reads[i].claimed.Equal(opened) {
			b.reads[i].claimed = time.Time{}
		}
	}
	b.reads[best].claimed, b.reads[best].took = opened, opened
	return b.reads[best].PlateRead, true
}

// better: r over cur by source, then by how often it was read, then by
// when.
func better(r, cur heldRead) bool {
	if r.Source != cur.Source {
		return r.PlateRead.Better(cur.Plate, cur.Source, cur.At) // by source rank alone when they differ
	}
	if r.n != cur.n {
		return r.n > cur.n
	}
	return r.At.After(cur.At)
}

// Ended implements session.PlateBook: the session opened at opened ended at
// at. Every read made until then was its car's or nobody's: the plates are
// set aside, and until the car leaves, what the cameras read is its car.
func (h *plateHub) Ended(port string, opened, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bay(port)
	for _, r := range b.reads {
		if !r.At.After(at) && r.Source == session.PlateFromCamera && (r.claimed.IsZero() || r.claimed.Equal(opened)) {
			b.setAside(r.Plate, r.n, r.claimed.Equal(opened), at)
			if r.took.Equal(opened) {
				b.gone[r.Plate].took = true
			}
		}
	}
	b.reads = slices.DeleteFunc(b.reads, func(r heldRead) bool { return !r.At.After(at) })
	b.cutoff, b.ended = at, true
}

// Left implements session.PlateBook: the port went idle at at (the car
// unplugged): reads made before are no later session's.
func (h *plateHub) Left(port string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bay(port)
	b.reads = slices.DeleteFunc(b.reads, func(r heldRead) bool { return !r.At.After(at) })
	if at.After(b.cutoff) {
		b.cutoff = at
	}
	b.ended = false
}

// PlateInput is POST /plates: a plate for a port from a parking system or
// a script (source api), or POST /plates/attendant: the attendant's entry
// (`pilebridge plate`). The source is what the endpoint says, never the
// body: a field "source" is read and ignored, as is any field a parking
// system adds.
type PlateInput struct {
	Port       string    `json:"port"`
	Plate      string    `json:"plate"`
	Time       time.Time `json:"time,omitempty"` // when it was read; default now
	Source     string    `json:"source,omitempty"`
	Confidence int       `json:"confidence,omitempty"`
}

// servePlate serves POST /plates (src api) and /plates/attendant, with the
// local API's token (the guard checks it).
func (h *plateHub) servePlate(src session.PlateSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in PlateInput
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&in); err != nil {
			http.Error(w, fmt.Sprintf("want JSON {port, plate, time, confidence}: %v", err), http.StatusBadRequest)
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
}
