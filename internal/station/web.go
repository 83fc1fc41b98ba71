package station

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"pilebridge/internal/dbfile"
	"pilebridge/session"
	"pilebridge/uploader"
)

// Paging of /outbox and /sessions: anyone who reaches listen could
// otherwise make the board read and send its whole database at once.
const (
	defaultPage = 500
	maxPage     = 5000
)

// pageLimit reads ?limit= (default defaultPage, at most maxPage).
func pageLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultPage, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		http.Error(w, fmt.Sprintf("limit: want 1..%d", maxPage), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

// setNext points to the next page (RFC 8288 Link, rel="next"): the same
// query with after= where this page ended.
func setNext(w http.ResponseWriter, r *http.Request, after string) {
	q := r.URL.Query()
	q.Set("after", after)
	w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", r.URL.Path, q.Encode()))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // records carry personal data; state is live
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// handler serves /status, /outbox, /outbox/retry and /metrics on the
// configured listen address (keep it on loopback or a management network).
func (a *Station) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.servePage)
	mux.HandleFunc("GET /status", a.serveStatus)
	mux.HandleFunc("GET /sessions", a.serveSessions)
	mux.HandleFunc("GET /healthz", a.serveHealth)
	mux.HandleFunc("GET /outbox", func(w http.ResponseWriter, r *http.Request) {
		limit, ok := pageLimit(w, r)
		if !ok {
			return
		}
		var after uint64
		if v := r.URL.Query().Get("after"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				http.Error(w, "after: want the sequence number a page ended at", http.StatusBadRequest)
				return
			}
			after = n
		}
		pending, parked, delivered, next, err := a.outbox.ListPage(r.URL.Query().Get("all") != "", after, limit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		l := OutboxListing{Pending: pending, Parked: parked, Delivered: delivered}
		if !authorized(r) {
			for _, list := range [][]uploader.Entry{l.Pending, l.Parked, l.Delivered} {
				for i := range list {
					list[i].Record = list[i].Record.Masked()
				}
			}
		}
		if next > 0 {
			setNext(w, r, strconv.FormatUint(next, 10))
		}
		writeJSON(w, l)
	})
	mux.HandleFunc("POST /outbox/retry", func(w http.ResponseWriter, r *http.Request) {
		order := r.URL.Query().Get("order")
		if order == "" && r.URL.Query().Get("parked") == "" {
			http.Error(w, "give order=ORDER or parked=1", http.StatusBadRequest)
			return
		}
		n, dropped, err := a.outbox.Requeue(order)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, RequeueResult{Requeued: n, Dropped: dropped})
	})
	// a hot copy of the database while the daemon holds it (`pilebridge db
	// backup`): written to data_dir/backup as the hourly ones are
	mux.HandleFunc("POST /db/backup", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			http.Error(w, "a bearer token is needed (listen_token_file)", http.StatusUnauthorized)
			return
		}
		// a large database on an SD card takes longer than the server's
		// write timeout
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(15 * time.Minute))
		name, err := dbfile.Backup(a.db, a.cfg.DataDir, time.Now())
		if name == "" {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		res := BackupResult{File: name}
		if err != nil {
			res.Warning = err.Error()
		}
		writeJSON(w, res)
	})
	// a camera sends no token: the guard lets these through, and the hub
	// takes a push only from the addresses configured for the camera
	mux.HandleFunc("POST /plates/camera", a.plates.serveCamera(alarmInfoPlate))
	mux.HandleFunc("POST /plates/camera/{secret}", a.plates.serveCamera(alarmInfoPlate))
	mux.HandleFunc("POST /plates/hikvision", a.plates.serveCamera(hikvision))
	mux.HandleFunc("POST /plates/hikvision/{secret}", a.plates.serveCamera(hikvision))
	// Dahua's ITSAPI paths are fixed by the protocol (the camera is given
	// only the server's address and port)
	mux.HandleFunc("POST /NotificationInfo/TollgateInfo", a.plates.serveCamera(dahua))
	mux.HandleFunc("POST /NotificationInfo/KeepAlive", a.plates.serveKeepAlive)
	mux.HandleFunc("POST /plates", a.plates.servePlate(session.PlateFromAPI))
	mux.HandleFunc("POST /plates/attendant", a.plates.servePlate(session.PlateFromAttendant))
	mux.HandleFunc("GET /attendant", a.serveAttendant)
	mux.HandleFunc("POST /attendant", a.serveAttendantForm)
	mux.Handle("GET /metrics", &collector{a: a})
	return mux
}

type RequeueResult struct {
	Requeued int `json:"requeued"`
	Dropped  int `json:"dropped_obsolete"`
}

// BackupResult is POST /db/backup's answer: the copy the daemon wrote, and
// what went wrong tidying the backup directory, if anything.
type BackupResult struct {
	File    string `json:"file"`
	Warning string `json:"warning,omitempty"`
}

type OutboxListing struct {
	Pending   []uploader.Entry `json:"pending"`
	Parked    []uploader.Entry `json:"parked"`
	Delivered []uploader.Entry `json:"delivered"`
}
