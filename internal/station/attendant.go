package station

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"pilebridge/internal/config"
	"pilebridge/internal/pii"
	"pilebridge/internal/plate"
	"pilebridge/session"
)

// The attendant page (/attendant): a person at the station puts a plate on
// a port's session, or on its bill waiting for one, from a phone, with a
// short code of their own (plates.attendants), never the API token. The
// page does not reload by itself (what is typed stays), lists every port
// whatever its state, and answers in its own language.

// Wrong codes: attendantTries from one address within attendantLock lock
// that address for attendantLock; attendantTriesAll from all addresses
// together lock the form for everyone as long (a guesser with many
// addresses). With 6 characters at least, guessing is hopeless either way.
const (
	attendantTries    = 5
	attendantTriesAll = 30
	attendantLock     = 10 * time.Minute
	maxGateAddrs      = 256
)

// attendantGate counts wrong codes.
type attendantGate struct {
	mu     sync.Mutex
	byAddr map[string]*codeTries
	all    codeTries
}

type codeTries struct {
	n           int
	since       time.Time
	lockedUntil time.Time
}

func (c *codeTries) fail(now time.Time, limit int) {
	if now.Sub(c.since) > attendantLock {
		c.n, c.since = 0, now
	}
	if c.n++; c.n >= limit {
		c.lockedUntil, c.n = now.Add(attendantLock), 0
	}
}

// locked says until when addr may not try.
func (g *attendantGate) locked(addr string, now time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.all.lockedUntil) {
		return g.all.lockedUntil, true
	}
	if t := g.byAddr[addr]; t != nil && now.Before(t.lockedUntil) {
		return t.lockedUntil, true
	}
	return time.Time{}, false
}

func (g *attendantGate) failed(addr string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.byAddr[addr]
	if t == nil {
		if len(g.byAddr) >= maxGateAddrs {
			for k, v := range g.byAddr { // forget one whose lock is over
				if !now.Before(v.lockedUntil) {
					delete(g.byAddr, k)
					break
				}
			}
		}
		t = &codeTries{since: now}
		g.byAddr[addr] = t
	}
	t.fail(now, attendantTries)
	g.all.fail(now, attendantTriesAll)
}

// attendantOf is the attendant whose code this is, compared in constant
// time against every code.
func attendantOf(list []config.Attendant, code string) (config.Attendant, bool) {
	var found config.Attendant
	ok := false
	for _, a := range list {
		if subtle.ConstantTimeCompare([]byte(a.Code), []byte(code)) == 1 && code != "" {
			found, ok = a, true
		}
	}
	return found, ok
}

// attendantPort is a port as the attendant page lists it.
type attendantPort struct {
	Key, Alias string
	State      session.PortState
	Waits      bool // its bill waits for a plate
}

type attendantData struct {
	Lang, Station string
	Ports         []attendantPort
	Port, Plate   string // the form's values kept after an error
	Done, Error   string
	NoAttendants  bool
}

func newAttendantPages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for i, lang := range []string{"zh", "en"} {
		t, err := template.New("attendant.html").Funcs(template.FuncMap{"t": labelFunc(i)}).ParseFS(webFS, "web/attendant.html")
		if err != nil {
			return nil, err
		}
		out[lang] = t
	}
	return out, nil
}

// formLang is the page's language: the form's field, else as for GET.
func formLang(r *http.Request) string {
	switch r.PostFormValue("lang") {
	case "zh", "en":
		return r.PostFormValue("lang")
	}
	return pageLang(r)
}

// say is a message in the page's language.
func say(lang, zh, en string, args ...any) string {
	if lang == "en" {
		return fmt.Sprintf(en, args...)
	}
	return fmt.Sprintf(zh, args...)
}

func (a *Station) attendantData(lang string, now time.Time) (attendantData, error) {
	d := attendantData{Lang: lang, Station: a.cfg.StationUUID, NoAttendants: len(a.cfg.Plates.Attendants) == 0}
	waits, err := a.outbox.PlateWaits(now)
	if err != nil {
		return d, err
	}
	for _, v := range a.status.snapshot() {
		d.Ports = append(d.Ports, attendantPort{Key: v.Key, Alias: v.Alias, State: v.State, Waits: waits[v.Key] != ""})
	}
	return d, nil
}

func (a *Station) renderAttendant(w http.ResponseWriter, status int, d attendantData) {
	var buf bytes.Buffer
	if err := a.attendantPages[d.Lang].Execute(&buf, d); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// serveAttendant is GET /attendant[?port=P&lang=L&done=…].
func (a *Station) serveAttendant(w http.ResponseWriter, r *http.Request) {
	lang := pageLang(r)
	d, err := a.attendantData(lang, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	q := r.URL.Query()
	d.Port = q.Get("port")
	// the banner after a plate was set is worded here from checked values,
	// never taken as text from the URL (a crafted link would put its own
	// words on the board's page)
	if set, plate := q.Get("set"), q.Get("plate"); set != "" && a.plates.ports[set] && maskedPlateRe.MatchString(plate) {
		order := q.Get("order")
		if !orderRe.MatchString(order) {
			order = ""
		}
		d.Done = say(lang, "%s 已登记到 %s。", "%s set on %s.", plate, set)
		if order != "" {
			d.Done = say(lang, "%s 已登记到 %s，等待车牌的账单 %s 已随车牌上传。", "%s set on %s: its bill %s, which waited for a plate, leaves with it.", plate, set, order)
		}
	}
	a.renderAttendant(w, http.StatusOK, d)
}

// serveAttendantForm is POST /attendant: port, plate, code, lang.
func (a *Station) serveAttendantForm(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	lang := formLang(r)
	d, err := a.attendantData(lang, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d.Port, d.Plate = r.PostFormValue("port"), bounded(r.PostFormValue("plate"), 16)
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	h := a.plates
	if until, locked := a.gate.locked(host, now); locked {
		d.Error = say(lang, "错误的值班码太多，请 %d 分钟后再试。", "Too many wrong codes: try again in %d min.", int(until.Sub(now).Minutes())+1)
		a.renderAttendant(w, http.StatusTooManyRequests, d)
		return
	}
	who, ok := attendantOf(a.cfg.Plates.Attendants, r.PostFormValue("code"))
	if !ok {
		a.gate.failed(host, now)
		h.count(session.PlateFromAttendant, "refused")
		h.logRefused(host, "attendant code refused", errors.New("wrong attendant code"), nil)
		d.Error = say(lang, "值班码不对。", "That code is not an attendant's.")
		a.renderAttendant(w, http.StatusForbidden, d)
		return
	}
	if !h.ports[d.Port] {
		d.Error = say(lang, "没有这个充电枪：%s", "No such port: %s", bounded(d.Port, 40))
		a.renderAttendant(w, http.StatusBadRequest, d)
		return
	}
	p, err := plate.Normalize(d.Plate)
	if err != nil {
		h.count(session.PlateFromAttendant, "invalid")
		d.Error = say(lang, "「%s」不是车牌号（例如 川A12345、川AD12345）。", "%q is not a plate (for example 川A12345, 川AD12345).", d.Plate)
		a.renderAttendant(w, http.StatusBadRequest, d)
		return
	}
	order := h.put(d.Port, session.PlateRead{Plate: p, Source: session.PlateFromAttendant, By: who.Name, At: now})
	h.log.Info().Str("port", d.Port).Str("plate", pii.Plate(p)).Str("source", "attendant").Str("by", who.Name).
		Str("order", order).Msg("plate from the attendant page")
	q := url.Values{"lang": {lang}, "port": {d.Port}, "set": {d.Port}, "plate": {pii.Plate(p)}, "order": {order}}
	http.Redirect(w, r, "/attendant?"+q.Encode(), http.StatusSeeOther)
}

// maskedPlateRe is a plate as pii.Plate masks it (川A*****).
var maskedPlateRe = regexp.MustCompile(`^\p{Han}[A-Z][A-Z0-9*]{4,8}$`)

// orderRe is an order number as NextOrder makes them.
var orderRe = regexp.MustCompile(`^[0-9A-Za-z]{1,32}$`)

// isAttendantForm: POST /attendant, which a phone's browser sends without
// the token (the code in the form is checked instead).
func isAttendantForm(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == "/attendant"
}
