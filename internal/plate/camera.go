package plate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// CameraRead is one read pushed by an LPR camera in the AlarmInfoPlate
// format many Chinese bay and gate cameras use.
type CameraRead struct {
	Serial     string
	IPAddr     string // the address the camera says it has
	Channel    int
	Plate      string // in normal form
	Raw        string // the licence as sent (decoded from base64 where it was)
	Color      int    // colorType: the camera's plate colour code
	Colour     string // the colour written with the licence, if any (blue, yellow, green, …)
	Confidence int
	At         time.Time // the camera's time; zero when it sent none
}

type alarmInfoPlate struct {
	AlarmInfoPlate *struct {
		Channel  int    `json:"channel"`
		IPAddr   string `json:"ipaddr"`
		SerialNo string `json:"serialno"`
		Result   struct {
			PlateResult *struct {
				License    string `json:"license"`
				ColorType  int    `json:"colorType"`
				Confidence int    `json:"confidence"`
				TimeStamp  struct {
					Timeval struct {
						Sec  int64 `json:"sec"`
						USec int64 `json:"usec"`
					} `json:"Timeval"`
				} `json:"timeStamp"`
			} `json:"PlateResult"`
		} `json:"result"`
	} `json:"AlarmInfoPlate"`
}

// ErrNoPlate: the camera's push carries no licence (it saw a car but read
// no plate, or it is a heartbeat).
var ErrNoPlate = errors.New("no licence in the push")

// ParseCameraPush reads an AlarmInfoPlate push. The body may be GBK
// (GB2312, GB18030: many cameras' default), as its Content-Type says or,
// when it says nothing, as the bytes show (they are not UTF-8). The licence
// may be plain or base64 (as the camera is set), with the plate's colour
// before or after it (蓝川A55555); it is normalised and checked. A push
// with the wrong shape, or a licence that is not a plate, is an error that
// says which; the read's other fields are returned with it for the log.
func ParseCameraPush(body []byte, contentType string) (CameraRead, error) {
	body, err := utf8Body(body, contentType)
	if err != nil {
		return CameraRead{}, fmt.Errorf("camera push: %w", err)
	}
	var m alarmInfoPlate
	if err := json.Unmarshal(body, &m); err != nil {
		return CameraRead{}, fmt.Errorf("camera push: %w", err)
	}
	a := m.AlarmInfoPlate
	if a == nil {
		return CameraRead{}, errors.New("camera push: no AlarmInfoPlate object")
	}
	r := CameraRead{Serial: a.SerialNo, IPAddr: a.IPAddr, Channel: a.Channel}
	if r.Serial == "" {
		return r, errors.New("camera push: no serialno")
	}
	p := a.Result.PlateResult
	if p == nil || NoPlate(p.License) {
		return r, ErrNoPlate
	}
	r.Color, r.Confidence = p.ColorType, p.Confidence
	if tv := p.TimeStamp.Timeval; tv.Sec > 0 {
		r.At = time.Unix(tv.Sec, tv.USec*1000)
	}
	r.Raw = p.License
	n, colour, err := withColour(p.License)
	if err != nil {
		// a camera set to base64 sends the UTF-8 licence encoded
		if b, derr := base64.StdEncoding.DecodeString(p.License); derr == nil && utf8.Valid(b) {
			if n2, c2, err2 := withColour(string(b)); err2 == nil {
				r.Raw, n, colour, err = string(b), n2, c2, nil
			}
		}
	}
	if err != nil {
		return r, err
	}
	r.Plate, r.Colour = n, colour
	return r, nil
}

// withColour normalises a licence that may carry the plate's colour: as it
// is first (黑 is Heilongjiang's province as well as a colour), then with
// the colour taken off.
func withColour(s string) (plate, colour string, err error) {
	if n, err := Normalize(s); err == nil {
		return n, "", nil
	}
	licence, colour := StripColour(s)
	if colour == "" {
		_, err := Normalize(s)
		return "", "", err
	}
	n, err := Normalize(licence)
	return n, colour, err
}

// utf8Body is body in UTF-8: decoded from GB18030 (a superset of GBK and
// GB2312) when the Content-Type names one of them, or names no charset and
// the bytes are not UTF-8.
func utf8Body(body []byte, contentType string) ([]byte, error) {
	charset := ""
	if _, params, err := mime.ParseMediaType(contentType); err == nil {
		charset = strings.ToLower(params["charset"])
	}
	switch {
	case charset == "gbk" || charset == "gb2312" || charset == "gb18030" || charset == "" && !utf8.Valid(body):
		out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(body)
		if err != nil {
			return nil, fmt.Errorf("GBK body: %w", err)
		}
		return out, nil
	case charset == "" || charset == "utf-8" || charset == "utf8":
		return body, nil
	}
	return nil, fmt.Errorf("charset %q: want UTF-8 or GBK", charset)
}

// colours are the plate colours cameras put before or after the licence,
// longest first (黄绿 before 黄).
var colours = []struct{ word, colour string }{
	{"黄绿", "yellow-green"}, {"YELLOWGREEN", "yellow-green"}, {"YELLOW-GREEN", "yellow-green"},
	{"蓝", "blue"}, {"黄", "yellow"}, {"绿", "green"}, {"白", "white"}, {"黑", "black"},
	{"BLUE", "blue"}, {"YELLOW", "yellow"}, {"GREEN", "green"}, {"WHITE", "white"}, {"BLACK", "black"},
}

// StripColour takes a plate colour written before or after the licence
// (蓝川A55555, 川A55555黄, 蓝牌川A55555, BLUE 川A55555) off it, and says
// which. A licence without one comes back as it is.
func StripColour(s string) (licence, colour string) {
	t := strings.TrimSpace(s)
	for _, c := range colours {
		for _, w := range []string{c.word + "牌", c.word + "色", c.word} {
			u := strings.ToUpper(t)
			switch {
			case strings.HasPrefix(u, w) && len(t) > len(w):
				return strings.TrimLeft(t[len(w):], " :_-"), c.colour
			case strings.HasSuffix(u, w) && len(t) > len(w):
				return strings.TrimRight(t[:len(t)-len(w)], " :_-"), c.colour
			}
		}
	}
	return t, ""
}

// noPlate are what cameras send when they saw a car and read no plate.
var noPlate = []string{"", "_无_", "无", "无车牌", "无牌车", "无牌", "未识别", "车牌", "NOPLATE", "NO PLATE", "UNKNOWN"}

// NoPlate says the licence field is a camera's way of saying it read none.
func NoPlate(s string) bool {
	t := strings.ToUpper(strings.TrimSpace(s))
	for _, m := range noPlate {
		if t == m {
			return true
		}
	}
	return false
}

// CameraAnswer is the reply such cameras expect: they log anything else as
// a failed push and may send it again.
func CameraAnswer(ok bool) []byte {
	info := "ok"
	if !ok {
		info = "no"
	}
	b, _ := json.Marshal(map[string]any{"Response_AlarmInfoPlate": map[string]any{"info": info}})
	return b
}
