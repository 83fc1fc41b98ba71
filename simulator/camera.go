package simulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Camera is a simulated LPR camera above a bay: it pushes its reads in its
// maker's format: the AlarmInfoPlate JSON many Chinese bay and gate
// cameras send (the default), Hikvision's ISAPI ANPR event (multipart, with
// pictures) or Dahua's ITSAPI TollgateInfo (JSON with base64 pictures).
type Camera struct {
	Maker   string // "" or "alarminfoplate", "hikvision", "dahua"
	Serial  string // serialno; the MAC address for hikvision; DeviceID for dahua
	IPAddr  string // the address it reports (not where it posts from)
	Channel int
	// Base64 sends the licence base64-encoded, as AlarmInfoPlate cameras
	// can be set to.
	Base64 bool
	// GBK sends the body GBK-encoded, many cameras' default, with the
	// charset in its Content-Type.
	GBK    bool
	Client *http.Client
}

// Makers are the push formats Camera speaks.
var Makers = []string{"alarminfoplate", "hikvision", "dahua"}

// Push sends one read of plate to url and returns the bridge's answer.
func (c Camera) Push(ctx context.Context, url, plate string, confidence int, at time.Time) (int, []byte, error) {
	var body []byte
	var contentType string
	var err error
	switch c.Maker {
	case "", "alarminfoplate":
		body, err = c.alarmInfoPlate(plate, confidence, at)
		contentType = "application/json"
	case "hikvision":
		body, contentType, err = c.hikvision(plate, confidence, at)
	case "dahua":
		body, err = c.dahua(plate, confidence, at)
		contentType = "application/json"
	default:
		return 0, nil, fmt.Errorf("camera maker %q: want one of %v", c.Maker, Makers)
	}
	if err != nil {
		return 0, nil, err
	}
	if c.GBK {
		if body, err = simplifiedchinese.GBK.NewEncoder().Bytes(body); err != nil {
			return 0, nil, err
		}
		contentType += "; charset=GBK"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	hc := c.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("camera %s: push: %w", c.Serial, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, answer, err
}

func (c Camera) alarmInfoPlate(plate string, confidence int, at time.Time) ([]byte, error) {
	lic := plate
	if c.Base64 {
		lic = base64.StdEncoding.EncodeToString([]byte(plate))
	}
	type timeval struct {
		Sec  int64 `json:"sec"`
		USec int64 `json:"usec"`
	}
	return json.Marshal(map[string]any{"AlarmInfoPlate": map[string]any{
		"channel": c.Channel, "deviceName": "IVS", "ipaddr": c.IPAddr, "serialno": c.Serial,
		"result": map[string]any{"PlateResult": map[string]any{
			"license": lic, "colorType": 1, "confidence": confidence, "triggerType": 8,
			"timeStamp": map[string]any{"Timeval": timeval{Sec: at.Unix(), USec: int64(at.Nanosecond() / 1000)}},
		}},
	}})
}

// picture stands in for a camera's JPEG: a few tens of KiB, as a plate
// crop and a scene picture are.
func picture(n int) []byte {
	b := bytes.Repeat([]byte{0x5A}, n)
	b[0], b[1] = 0xFF, 0xD8
	return b
}

// hikvision is the ISAPI EventNotificationAlert of an ANPR event, in the
// multipart form with the plate and scene pictures.
func (c Camera) hikvision(plate string, confidence int, at time.Time) ([]byte, string, error) {
	var doc bytes.Buffer
	doc.WriteString(xml.Header)
	doc.WriteString(`<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">` + "\n")
	field := func(name, v string) {
		doc.WriteString("<" + name + ">")
		_ = xml.EscapeText(&doc, []byte(v))
		doc.WriteString("</" + name + ">\n")
	}
	field("ipAddress", c.IPAddr)
	field("macAddress", c.Serial)
	field("channelID", fmt.Sprint(max(c.Channel, 1)))
	field("dateTime", at.Format(time.RFC3339))
	field("activePostCount", "1")
	field("eventType", "ANPR")
	field("eventState", "active")
	field("eventDescription", "ANPR")
	doc.WriteString("<ANPR>\n")
	field("licensePlate", plate)
	field("confidenceLevel", fmt.Sprint(confidence))
	field("plateColor", "blue")
	field("originalLicensePlate", plate)
	doc.WriteString("</ANPR>\n<picNum>2</picNum>\n</EventNotificationAlert>\n")

	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	part := func(name, ct string, data []byte) error {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, name, name))
		h.Set("Content-Type", ct)
		p, err := w.CreatePart(h)
		if err != nil {
			return err
		}
		_, err = p.Write(data)
		return err
	}
	for _, p := range []struct {
		name, ct string
		data     []byte
	}{{"anpr.xml", "text/xml", doc.Bytes()}, {"licensePlatePicture.jpg", "image/jpeg", picture(8 << 10)}, {"detectionPicture.jpg", "image/jpeg", picture(120 << 10)}} {
		if err := part(p.name, p.ct, p.data); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return b.Bytes(), w.FormDataContentType(), nil
}

// dahua is ITSAPI's TollgateInfo push, pictures in base64.
func (c Camera) dahua(plate string, confidence int, at time.Time) ([]byte, error) {
	pic := base64.StdEncoding.EncodeToString(picture(60 << 10))
	return json.Marshal(map[string]any{"Picture": map[string]any{
		"NormalPic": map[string]any{"PicName": "normal.jpg", "Content": pic},
		"CutoutPic": map[string]any{"PicName": "cutout.jpg", "Content": pic[:8<<10]},
		"Plate": map[string]any{"PlateNumber": plate, "PlateColor": "Blue", "Confidence": confidence,
			"IsExist": true, "Channel": c.Channel, "PlateType": "Normal"},
		"SnapInfo": map[string]any{"DeviceID": c.Serial, "SnapTime": at.Local().Format("2006-01-02 15:04:05"),
			"Direction": "Obverse", "SnapType": "Auto", "TriggerSource": "Video"},
		"VehicleInfo": map[string]any{"VehicleType": "Car"},
	}})
}
