package station

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"pilebridge/internal/dbfile"
	"pilebridge/uploader"
)

// storeStuckAfter: a commit still waiting for its fsync this long means the
// storage has hung (a dying SD card); the watchdog stops.
const storeStuckAfter = 30 * time.Second

// babbleRecent: a babble this recent is a health reason.
const babbleRecent = time.Minute

// reason is one thing wrong, as data: its kind, the bus it concerns (if
// any) and its figures. Text says it in English for /healthz and the log;
// the page says it in its own language from the same kind and figures.
type reason struct {
	Kind   string            `json:"kind"`
	Bus    string            `json:"bus,omitempty"`
	Values map[string]string `json:"values,omitempty"`
	Text   string            `json:"text"`
}

// reasonTexts are the reasons' wordings, English and Chinese, with {bus}
// and each value's {name} filled in.
var reasonTexts = map[string][2]string{
	"bus_stuck":             {"bus {bus}: one exchange running for {for}", "总线 {bus}: 一次通信已持续 {for}"},
	"store_stuck":           {"store: a commit waiting for its fsync for {for}", "存储: 一次写入等待落盘已 {for}"},
	"bus_never":             {"bus {bus}: no good exchange since the start", "总线 {bus}: 启动以来没有成功的通信"},
	"bus_silent":            {"bus {bus}: no good exchange for {for}", "总线 {bus}: 已 {for} 没有成功的通信"},
	"bus_babble":            {"bus {bus}: the line babbles (does not fall silent; {times} time(s), last {ago} ago): a device or converter keeps sending", "总线 {bus}: 线路上噪声不断({times} 次,最近一次在 {ago} 前): 有设备或转换器持续发送"},
	"store_failed":          {"store: the last commit failed: {error}", "存储: 最近一次写入失败: {error}"},
	"store_unsaved":         {"store: cannot write for {for}: the sessions of {ports} port(s) are held in memory only; a restart now would lose what they gained since", "存储: 已 {for} 无法写入: {ports} 个充电口的会话只在内存中,此时重启会丢失这段时间的数据"},
	"deliveries_unrecorded": {"store: cannot record deliveries for {for}: the platform's answers wait in memory and nothing more is sent", "存储: 已 {for} 无法记录上传结果: 平台的应答暂存内存,暂停上传"},
	"outbox_unreadable":     {"outbox: {error}", "发件箱无法读取: {error}"},
	"bill_waiting":          {"outbox: a bill has waited {for} for the platform (max_bill_age {max})", "发件箱: 有账单已等待平台 {for}(max_bill_age {max})"},
	"store_replaced":        {"store: {path} was removed or replaced while open ({for} ago): the daemon writes on to its open file and keeps a copy of it at that path; restart it to write to the path again", "存储: {path} 在运行中被删除或替换({for} 前): 程序继续写入已打开的文件, 并在原路径保存其副本; 请重启程序"},
	"parked":                {"outbox: {records} record(s) parked by the platform; see `pilebridge outbox list`", "发件箱: {records} 条记录被平台拒收,见 pilebridge outbox list"},
}

func newReason(kind, bus string, kv ...string) reason {
	r := reason{Kind: kind, Bus: bus}
	if len(kv) > 0 {
		r.Values = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Values[kv[i]] = kv[i+1]
		}
	}
	r.Text = r.say(false)
	return r
}

// say words the reason in English, or in Chinese.
func (r reason) say(chinese bool) string {
	lang := 0
	if chinese {
		lang = 1
	}
	s := reasonTexts[r.Kind][lang]
	s = strings.ReplaceAll(s, "{bus}", r.Bus)
	for k, v := range r.Values {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

func round(d time.Duration) string { return d.Round(time.Second).String() }

// stuck is what alive reports: a bus hung inside one exchange, a commit
// hung in its fsync.
func (a *Station) stuck(now time.Time) []reason {
	var out []reason
	for _, name := range a.busNames() {
		if d, s := a.buses[name].Stuck(); s {
			out = append(out, newReason("bus_stuck", name, "for", round(d)))
		}
	}
	if t := a.store.Health().OldestInflight; !t.IsZero() && now.Sub(t) > storeStuckAfter {
		out = append(out, newReason("store_stuck", "", "for", round(now.Sub(t))))
	}
	return out
}

// alive is the watchdog's test: every loop that must keep running can. A
// bus hung inside one exchange, or a commit hung in its fsync, stops the
// pings, and systemd restarts the daemon.
func (a *Station) alive(now time.Time) error {
	var texts []string
	for _, r := range a.stuck(now) {
		texts = append(texts, r.Text)
	}
	if len(texts) > 0 {
		return fmt.Errorf("%s", strings.Join(texts, "; "))
	}
	return nil
}

// unhealthy lists what /healthz reports: what alive reports, a bus with no
// good exchange for offline_after, a failed last commit, a bill waiting for
// delivery longer than platform.max_bill_age, bills parked by the platform.
func (a *Station) unhealthy(now time.Time) []reason {
	counts, err := a.outbox.Counts()
	return a.reasons(now, counts, err)
}

// reasons is unhealthy on outbox counts already read (or the error reading
// them).
func (a *Station) reasons(now time.Time, counts uploader.Counts, countsErr error) []reason {
	out := a.stuck(now)
	if since, _ := a.filesProblem(); !since.IsZero() {
		out = append(out, newReason("store_replaced", "", "path", dbfile.Paths{Dir: a.cfg.DataDir}.DB(), "for", round(now.Sub(since))))
	}
	silence := a.cfg.Session.OfflineAfter
	for _, name := range a.busNames() {
		if now.Sub(a.started) < silence {
			break // a fresh start: give the lines their first polls
		}
		if last := a.buses[name].LastGood(); now.Sub(last) > silence {
			if last.IsZero() {
				out = append(out, newReason("bus_never", name))
			} else {
				out = append(out, newReason("bus_silent", name, "for", round(now.Sub(last))))
			}
		}
	}
	for _, name := range a.busNames() {
		if ls := a.buses[name].LineStats(); !ls.LastBabble.IsZero() && now.Sub(ls.LastBabble) < babbleRecent {
			out = append(out, newReason("bus_babble", name, "times", fmt.Sprint(ls.Babbles), "ago", round(now.Sub(ls.LastBabble))))
		}
	}
	if h := a.store.Health(); h.LastErr != nil {
		out = append(out, newReason("store_failed", "", "error", h.LastErr.Error()))
		if h.Unsaved > 0 {
			out = append(out, newReason("store_unsaved", "", "for", round(now.Sub(h.UnsavedSince)), "ports", fmt.Sprint(h.Unsaved)))
		}
	}
	if t := a.sender.Unrecorded(); !t.IsZero() {
		out = append(out, newReason("deliveries_unrecorded", "", "for", round(now.Sub(t))))
	}
	switch {
	case countsErr != nil:
		out = append(out, newReason("outbox_unreadable", "", "error", countsErr.Error()))
	default:
		if t := counts.OldestPendingBill; !t.IsZero() && now.Sub(t) > a.cfg.Platform.MaxBillAge {
			out = append(out, newReason("bill_waiting", "", "for", round(now.Sub(t)), "max", a.cfg.Platform.MaxBillAge.String()))
		}
		if counts.Parked > 0 {
			out = append(out, newReason("parked", "", "records", fmt.Sprint(counts.Parked)))
		}
	}
	return out
}

func (a *Station) busNames() []string {
	names := make([]string, 0, len(a.buses))
	for n := range a.buses {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// serveHealth is GET /healthz: 200 "ok", or 503 with one reason a line.
func (a *Station) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	reasons := a.unhealthy(time.Now())
	if len(reasons) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, r := range reasons {
		fmt.Fprintln(w, r.Text)
	}
}

// notifier speaks systemd's notify protocol (NOTIFY_SOCKET); without the
// variable every call is a no-op.
type notifier func(state string) error

func systemdNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// watchdog pings systemd at a third of WatchdogSec while alive holds. It
// returns at once when the unit has no watchdog.
func (a *Station) watchdog(ctx context.Context, notify notifier, alive func(time.Time) error) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		a.log.Error().Err(err).Msg("systemd watchdog settings")
		return
	}
	if every <= 0 {
		return
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	a.log.Info().Int64("watchdog_ms", every.Milliseconds()).Msg("systemd watchdog on")
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := alive(time.Now()); err != nil {
			if !failing {
				a.log.Error().Err(err).Msg("watchdog pings stopped: systemd will restart the daemon")
			}
			failing = true
			continue
		}
		if failing {
			a.log.Info().Msg("watchdog pings resumed")
		}
		failing = false
		if err := notify(daemon.SdNotifyWatchdog); err != nil {
			a.log.Warn().Err(err).Msg("systemd watchdog ping")
		}
	}
}
