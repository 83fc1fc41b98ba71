package plate

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// maxXMLPart bounds the XML of one Hikvision push; the pictures beside it
// are read past and dropped.
const maxXMLPart = 64 << 10

// hikAlert is the part of Hikvision's ISAPI EventNotificationAlert the
// bridge reads (ANPR event; the namespace is ignored: firmwares differ).
type hikAlert struct {
	XMLName    xml.Name `xml:"EventNotificationAlert"`
	IPAddress  string   `xml:"ipAddress"`
	MACAddress string   `xml:"macAddress"`
	ChannelID  int      `xml:"channelID"`
	DateTime   string   `xml:"dateTime"`
	EventType  string   `xml:"eventType"`
	EventState string   `xml:"eventState"`
	ANPR       *struct {
		LicensePlate         string  `xml:"licensePlate"`
		OriginalLicensePlate string  `xml:"originalLicensePlate"`
		ConfidenceLevel      float64 `xml:"confidenceLevel"`
		PlateColor           string  `xml:"plateColor"`
	} `xml:"ANPR"`
}

// ErrNotANPR: a Hikvision push that is not a plate read (a heartbeat, a
// motion event): answered, not counted as a refused read.
var ErrNotANPR = errors.New("not an ANPR event")

// ParseHikvision reads Hikvision's ISAPI ANPR event push: the
// EventNotificationAlert XML alone (Content-Type application/xml or
// text/xml), or as the XML part of a multipart/form-data push whose other
// parts are pictures, read past and dropped. The camera is identified by
// its MAC address (macAddress), the one field every firmware sends.
func ParseHikvision(body io.Reader, contentType string) (CameraRead, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		return CameraRead{}, fmt.Errorf("hikvision push: Content-Type %q: %w", contentType, err)
	}
	var doc []byte
	if strings.HasPrefix(mt, "multipart/") {
		if doc, err = xmlPart(multipart.NewReader(body, params["boundary"])); err != nil {
			return CameraRead{}, fmt.Errorf("hikvision push: %w", err)
		}
	} else if doc, err = readBounded(body, maxXMLPart); err != nil {
		return CameraRead{}, fmt.Errorf("hikvision push: %w", err)
	}
	var a hikAlert
	dec := xml.NewDecoder(strings.NewReader(string(doc)))
	dec.CharsetReader = gbkReader
	if err := dec.Decode(&a); err != nil {
		return CameraRead{}, fmt.Errorf("hikvision push: not an EventNotificationAlert: %w", err)
	}
	r := CameraRead{Serial: strings.ToLower(strings.TrimSpace(a.MACAddress)), IPAddr: a.IPAddress, Channel: a.ChannelID}
	if r.Serial == "" {
		return r, errors.New("hikvision push: no macAddress")
	}
	if !strings.EqualFold(a.EventType, "ANPR") || a.ANPR == nil {
		return r, fmt.Errorf("hikvision push: event %q: %w", bounded(a.EventType, 32), ErrNotANPR)
	}
	if t, err := time.Parse(time.RFC3339, strings.TrimSpace(a.DateTime)); err == nil {
		r.At = t
	}
	r.Confidence = int(a.ANPR.ConfidenceLevel)
	lic := a.ANPR.LicensePlate
	if NoPlate(lic) && !NoPlate(a.ANPR.OriginalLicensePlate) {
		lic = a.ANPR.OriginalLicensePlate
	}
	return r.withLicence(lic, a.ANPR.PlateColor)
}

// xmlPart is the XML part of a multipart push (by its Content-Type or a
// name ending in .xml); picture parts are read past, never kept.
func xmlPart(mr *multipart.Reader) ([]byte, error) {
	var doc []byte
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("multipart: %w", err)
		}
		ct := strings.ToLower(p.Header.Get("Content-Type"))
		isXML := strings.Contains(ct, "xml") || strings.HasSuffix(strings.ToLower(p.FileName()), ".xml") ||
			strings.HasSuffix(strings.ToLower(p.FormName()), ".xml")
		if isXML && doc == nil {
			if doc, err = readBounded(p, maxXMLPart); err != nil {
				return nil, fmt.Errorf("part %q: %w", bounded(p.FormName(), 32), err)
			}
			continue
		}
		if _, err := io.Copy(io.Discard, p); err != nil { // a picture: dropped
			return nil, fmt.Errorf("multipart: %w", err)
		}
	}
	if doc == nil {
		return nil, errors.New("multipart push without an XML part")
	}
	return doc, nil
}

// dahuaTollgate is the part of Dahua's ITSAPI TollgateInfo push the bridge
// reads; its pictures (base64 in NormalPic, CutoutPic…) are skipped.
type dahuaTollgate struct {
	Picture *struct {
		Plate *struct {
			PlateNumber string `json:"PlateNumber"`
			PlateColor  string `json:"PlateColor"`
			Confidence  int    `json:"Confidence"`
		} `json:"Plate"`
		SnapInfo struct {
			DeviceID string `json:"DeviceID"`
			SnapTime string `json:"SnapTime"`
			Channel  int    `json:"Channel"`
		} `json:"SnapInfo"`
	} `json:"Picture"`
}

// ParseDahua reads Dahua's ITSAPI TollgateInfo push (POST
// /NotificationInfo/TollgateInfo, JSON). The camera is identified by its
// DeviceID (SnapInfo).
func ParseDahua(body []byte, contentType string) (CameraRead, error) {
	body, err := utf8Body(body, contentType)
	if err != nil {
		return CameraRead{}, fmt.Errorf("dahua push: %w", err)
	}
	var m dahuaTollgate
	if err := json.Unmarshal(body, &m); err != nil {
		return CameraRead{}, fmt.Errorf("dahua push: %w", err)
	}
	if m.Picture == nil {
		return CameraRead{}, errors.New("dahua push: no Picture object")
	}
	si := m.Picture.SnapInfo
	r := CameraRead{Serial: strings.TrimSpace(si.DeviceID), Channel: si.Channel}
	if r.Serial == "" {
		return r, errors.New("dahua push: no SnapInfo.DeviceID")
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", si.SnapTime, time.Local); err == nil {
		r.At = t
	}
	p := m.Picture.Plate
	if p == nil {
		return r, ErrNoPlate
	}
	r.Confidence = p.Confidence
	return r.withLicence(p.PlateNumber, p.PlateColor)
}

// withLicence fills the plate from a licence (which may carry its colour)
// and a colour sent apart.
func (r CameraRead) withLicence(licence, colour string) (CameraRead, error) {
	if NoPlate(licence) {
		return r, ErrNoPlate
	}
	r.Raw = licence
	n, c, err := withColour(licence)
	if err != nil {
		return r, err
	}
	if c == "" {
		c = colourWord(colour)
	}
	r.Plate, r.Colour = n, c
	return r, nil
}

// colourWord is a colour sent in a field of its own (Blue, 蓝, yellowGreen)
// in the bridge's words; "" for one it does not know.
func colourWord(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	for _, c := range colours {
		if u == c.word || u == c.word+"色" || u == c.word+"牌" {
			return c.colour
		}
	}
	return ""
}

// readBounded reads r whole, or fails past limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("over %d bytes", limit)
	}
	return b, nil
}

// gbkReader lets the XML decoder read a document declared GBK or GB2312.
func gbkReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "gbk", "gb2312", "gb18030":
		return simplifiedchinese.GB18030.NewDecoder().Reader(in), nil
	}
	return nil, fmt.Errorf("charset %q: want UTF-8 or GBK", charset)
}

func bounded(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
