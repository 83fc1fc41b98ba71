package plate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
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

// ParseCameraPush reads an AlarmInfoPlate push. The licence may be plain
// or base64 (as the camera is set); it is normalised and checked. A push
// with the wrong shape, or a licence that is not a plate, is an error that
// says which; the read's other fields are returned with it for the log.
func ParseCameraPush(body []byte) (CameraRead, error) {
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
	if p == nil || p.License == "" || p.License == "_无_" {
		return r, ErrNoPlate
	}
	r.Color, r.Confidence = p.ColorType, p.Confidence
	if tv := p.TimeStamp.Timeval; tv.Sec > 0 {
		r.At = time.Unix(tv.Sec, tv.USec*1000)
	}
	r.Raw = p.License
	n, err := Normalize(p.License)
	if err != nil {
		// a camera set to base64 sends the UTF-8 licence encoded
		if b, derr := base64.StdEncoding.DecodeString(p.License); derr == nil && utf8.Valid(b) {
			if n2, err2 := Normalize(string(b)); err2 == nil {
				r.Raw, n, err = string(b), n2, nil
			}
		}
	}
	if err != nil {
		return r, err
	}
	r.Plate = n
	return r, nil
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
