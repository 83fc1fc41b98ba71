package plate

import (
	"bytes"
	"mime/multipart"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
)

func sample(t *testing.T, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

// hikMultipart is the push as Hikvision cameras send it with pictures: the
// XML part and JPEG parts in a multipart/form-data body.
func hikMultipart(t *testing.T, doc []byte, picture int) (body []byte, contentType string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="anpr.xml"; filename="anpr.xml"`)
	h.Set("Content-Type", "text/xml")
	p, err := w.CreatePart(h)
	require.NoError(t, err)
	_, _ = p.Write(doc)
	for _, name := range []string{"licensePlatePicture.jpg", "detectionPicture.jpg"} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+name+`"; filename="`+name+`"`)
		h.Set("Content-Type", "image/jpeg")
		p, err := w.CreatePart(h)
		require.NoError(t, err)
		_, _ = p.Write(bytes.Repeat([]byte{0xFF, 0xD8}, picture/2))
	}
	require.NoError(t, w.Close())
	return b.Bytes(), w.FormDataContentType()
}

func TestParseHikvision(t *testing.T) {
	doc := sample(t, "hikvision-anpr.xml")
	check := func(r CameraRead, err error) {
		t.Helper()
		require.NoError(t, err)
		assert.Equal(t, "川A55555", r.Plate)
		assert.Equal(t, "blue", r.Colour)
		assert.Equal(t, "44:19:b6:0a:1b:2c", r.Serial, "the MAC address identifies the camera")
		assert.Equal(t, 1, r.Channel)
		assert.Equal(t, 96, r.Confidence)
		assert.True(t, r.At.Equal(time.Date(2026, 12, 4, 1, 30, 15, 0, time.UTC)), "%v", r.At)
	}
	check(ParseHikvision(bytes.NewReader(doc), "application/xml"))
	check(ParseHikvision(bytes.NewReader(doc), ""))
	body, ct := hikMultipart(t, doc, 300<<10)
	check(ParseHikvision(bytes.NewReader(body), ct))

	// GB2312 declared and sent
	gb, err := simplifiedchinese.GBK.NewEncoder().Bytes(bytes.Replace(doc, []byte(`encoding="UTF-8"`), []byte(`encoding="GB2312"`), 1))
	require.NoError(t, err)
	check(ParseHikvision(bytes.NewReader(gb), "text/xml"))
}

func TestParseHikvisionRefuses(t *testing.T) {
	doc := string(sample(t, "hikvision-anpr.xml"))
	for name, c := range map[string]struct {
		body, ct string
		is       error
		want     string
	}{
		"heartbeat":   {strings.Replace(strings.Replace(doc, "<eventType>ANPR", "<eventType>videoloss", 1), "<eventState>active", "<eventState>inactive", 1), "text/xml", ErrNotANPR, ""},
		"no plate":    {strings.ReplaceAll(doc, "川A55555", "无车牌"), "text/xml", ErrNoPlate, ""},
		"not plate":   {strings.ReplaceAll(doc, "川A55555", "A5"), "text/xml", nil, "province"},
		"no mac":      {strings.Replace(doc, "<macAddress>44:19:B6:0A:1B:2C</macAddress>", "", 1), "text/xml", nil, "no macAddress"},
		"not xml":     {`{"a":1}`, "application/json", nil, "EventNotificationAlert"},
		"huge xml":    {"<EventNotificationAlert>" + strings.Repeat(" ", 70<<10), "text/xml", nil, "over 65536 bytes"},
		"no xml part": {"--b\r\nContent-Disposition: form-data; name=\"p.jpg\"\r\n\r\nxx\r\n--b--\r\n", "multipart/form-data; boundary=b", nil, "without an XML part"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseHikvision(strings.NewReader(c.body), c.ct)
			require.Error(t, err)
			if c.is != nil {
				assert.ErrorIs(t, err, c.is)
			} else {
				assert.Contains(t, err.Error(), c.want)
			}
		})
	}
}

func TestParseDahua(t *testing.T) {
	r, err := ParseDahua(sample(t, "dahua-tollgate.json"), "application/json")
	require.NoError(t, err)
	assert.Equal(t, "川A66666", r.Plate)
	assert.Equal(t, "yellow", r.Colour)
	assert.Equal(t, "6J0A1B2PAZ00042", r.Serial)
	assert.Equal(t, 91, r.Confidence)
	assert.Equal(t, 2026, r.At.Year())

	_, err = ParseDahua([]byte(`{"Picture":{"Plate":{"PlateNumber":"无车牌"},"SnapInfo":{"DeviceID":"X"}}}`), "")
	assert.ErrorIs(t, err, ErrNoPlate)
	_, err = ParseDahua([]byte(`{"Picture":{"Plate":{"PlateNumber":"川A66666"},"SnapInfo":{}}}`), "")
	assert.ErrorContains(t, err, "DeviceID")
	_, err = ParseDahua([]byte(`{"AlarmInfoPlate":{}}`), "")
	assert.ErrorContains(t, err, "no Picture object")
	gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes(sample(t, "dahua-tollgate.json"))
	require.NoError(t, err)
	r, err = ParseDahua(gbk, "application/json; charset=GBK")
	require.NoError(t, err, "GBK body")
	assert.Equal(t, "川A66666", r.Plate)
}
