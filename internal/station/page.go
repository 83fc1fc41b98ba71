package station

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"pilebridge/internal/units"
	"pilebridge/session"
	"pilebridge/uploader"
)

//go:embed web/status.html web/attendant.html
var webFS embed.FS

// labels are the page's words, Chinese and English, from one table.
var labels = map[string][2]string{
	"station": {"站点", "station"}, "version": {"版本", "version"}, "uptime": {"运行", "up"}, "clock": {"时钟", "clock"},
	"believed": {"已校准", "set"}, "provisional": {"未校准（时间暂定）", "not yet set (times provisional)"},
	"healthy": {"运行正常", "All well"}, "unhealthy": {"需要处理", "Needs attention"},
	"ports": {"充电枪", "Ports"}, "order": {"订单", "order"}, "energy": {"电量", "energy"}, "fees": {"费用", "fees"},
	"yuan": {"元", "yuan"}, "electricity": {"电费", "energy"}, "service": {"服务费", "service"}, "duration": {"时长", "duration"},
	"power": {"功率", "power"}, "meter": {"电表读数", "meter"}, "coarse": {"寄存器分辨率粗", "coarse register"},
	"reading": {"最后读数", "last reading"}, "ago": {"前", "ago"}, "fault": {"故障", "fault"}, "poll_error": {"通信错误", "poll error"},
	"platform": {"平台与上传", "Platform and uploads"}, "last_success": {"最后成功", "last success"},
	"failures": {"连续失败", "failures in a row"}, "last_error": {"最后错误", "last error"}, "outbox": {"待上传", "outbox"},
	"pending": {"排队", "pending"}, "parked": {"被拒", "parked"}, "last_delivery": {"最后上传", "last delivery"},
	"parked_records": {"被平台拒绝的记录", "Records the platform rejected"}, "kind": {"类型", "kind"}, "reason": {"原因", "reason"},
	"retry_hint": {"修正原因后执行 pilebridge outbox retry --parked 重新上传。", "Fix the cause, then run pilebridge outbox retry --parked."},
	"buses":      {"总线", "Buses"}, "slave": {"从站", "slave"}, "success": {"成功率", "success"}, "last_good": {"最后成功", "last good"},
	"timeouts": {"超时", "timeouts"}, "frame": {"帧错误", "frame"}, "exception": {"异常码", "exception"}, "line": {"线路", "line"},
	"latency": {"延迟", "latency"}, "strays": {"迟到帧", "stray frames"},
	"recent": {"最近结束的充电", "Recent sessions"}, "port": {"枪", "port"}, "end": {"结束", "ended"}, "result": {"结果", "result"},
	"delivery": {"上传", "delivery"}, "none": {"暂无", "none yet"}, "refresh": {"自动刷新", "refreshes every"},
	"kind.progress": {"进度", "progress"}, "kind.final": {"账单", "bill"}, "kind.start_failed": {"启动失败", "start failed"},
	"load": {"线路负载", "line load"}, "overloaded": {"过载：端口读不过来", "overloaded: ports are read late"},
	"plate":            {"车牌", "plate"},
	"plate_source.vin": {"VIN对照", "VIN table"}, "plate_source.camera": {"车位相机", "camera"},
	"plate_source.api": {"停车系统", "parking system"}, "plate_source.attendant": {"值班员", "attendant"},
	"camera_pushes": {"最近的相机推送", "Latest camera pushes"}, "time": {"时间", "time"}, "camera": {"相机", "camera"}, "from": {"来源地址", "from"},
	"push.taken": {"已采用", "taken"}, "push.invalid": {"不是车牌", "not a plate"}, "push.no_plate": {"未识别到车牌", "no plate read"},
	"push.refused": {"拒绝", "refused"}, "push.malformed": {"格式无法识别", "not understood"},
	"att.title": {"登记车牌", "Set a plate"}, "att.port": {"充电枪", "Port"}, "att.plate": {"车牌号", "Plate"},
	"att.code": {"值班码", "Attendant code"}, "att.submit": {"登记", "Set plate"},
	"att.waits": {"账单等待车牌", "bill waits for a plate"},
	"att.none":  {"本站未设置值班员（plates.attendants），无法在此登记车牌。", "No attendants are configured (plates.attendants): plates cannot be set here."},
	"att.hint":  {"车牌用于停车费减免；登记后本次充电（或等待车牌的账单）带上此车牌。", "The plate earns the parking-fee reduction: the port's session, or its bill waiting for a plate, takes it."},
	"att.back":  {"返回状态页", "Back to the status page"}, "set_plate": {"登记车牌", "set plate"},
	"delivery.pending": {"排队", "pending"}, "delivery.delivered": {"已上传", "delivered"}, "delivery.parked": {"被拒", "parked"},
}

// pageData is what the template sees.
type pageData struct {
	D       statusDoc
	Lang    string
	Refresh int
}

// newPages parses the page once per language: lang 0 Chinese, 1 English.
func newPages(loc *time.Location) (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for i, lang := range []string{"zh", "en"} {
		t, err := newPageTemplate(loc, i)
		if err != nil {
			return nil, err
		}
		out[lang] = t
	}
	return out, nil
}

// labelFunc is the templates' t: a label in language lang (0 Chinese, 1
// English); a port state in the words the platform shows.
func labelFunc(lang int) func(string) string {
	return func(key string) string {
		if st, ok := strings.CutPrefix(key, "state."); ok {
			if lang == 0 {
				return uploader.PortDesc(session.PortState(st)) // the texts the platform shows
			}
			return strings.ReplaceAll(st, "_", " ")
		}
		if l, ok := labels[key]; ok {
			return l[lang]
		}
		return key
	}
}

func newPageTemplate(loc *time.Location, lang int) (*template.Template, error) {
	funcs := template.FuncMap{
		"t":       labelFunc(lang),
		"why":     func(r reason) string { return r.say(lang == 0) },
		"kwh":     units.KWh,
		"yuan":    units.Yuan,
		"add":     func(a, b int64) int64 { return a + b },
		"kw":      func(w int64) string { return fmt.Sprintf("%.1f", float64(w)/1000) },
		"deref":   func(p *int) int { return *p },
		"deref64": func(p *int64) int64 { return *p },
		"dur":     func(ms int64) string { return shortDur(time.Duration(ms) * time.Millisecond) },
		"since":   func(t *time.Time, now time.Time) string { return shortDur(now.Sub(*t)) },
		"local":   func(t time.Time) string { return t.In(loc).Format("01-02 15:04") },
	}
	return template.New("status.html").Funcs(funcs).ParseFS(webFS, "web/status.html")
}

// shortDur is a duration as a person reads it: 45s, 12m05s, 3h07m, 2d04h.
func shortDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

func pageLang(r *http.Request) string {
	switch r.URL.Query().Get("lang") {
	case "zh":
		return "zh"
	case "en":
		return "en"
	}
	if al := r.Header.Get("Accept-Language"); al != "" && !strings.HasPrefix(strings.ToLower(al), "zh") {
		return "en"
	}
	return "zh"
}

// pageCSP: the page has no script, no frames, no forms elsewhere and only
// its own inline style, so nothing else may run or load.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// servePage is GET /: the station at a glance, server-rendered, refreshing
// itself; no JavaScript.
func (a *Station) servePage(w http.ResponseWriter, r *http.Request) {
	d, err := a.statusOf(time.Now(), 20, false) // the page masks personal data, token or not
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	lang := pageLang(r)
	var buf bytes.Buffer
	if err := a.pages[lang].Execute(&buf, pageData{D: d, Lang: lang, Refresh: 5}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", pageCSP)
	_, _ = w.Write(buf.Bytes())
}
