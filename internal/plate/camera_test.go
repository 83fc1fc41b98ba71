package plate

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
)

func push(license string) []byte {
	return []byte(fmt.Sprintf(`{"AlarmInfoPlate":{"channel":1,"deviceName":"IVS","ipaddr":"192.168.1.64","serialno":"a1b2c3d4-e5f60718",
"result":{"PlateResult":{"colorType":5,"confidence":93,"license":%q,"timeStamp":{"Timeval":{"sec":1764662400,"usec":250000}},"triggerType":8}}}}`, license))
}

func TestParseCameraPush(t *testing.T) {
	r, err := ParseCameraPush(push("川ＡＤ６６０１１"), "")
	require.NoError(t, err)
	assert.Equal(t, "川AD66011", r.Plate)
	assert.Equal(t, "a1b2c3d4-e5f60718", r.Serial)
	assert.Equal(t, "192.168.1.64", r.IPAddr)
	assert.Equal(t, 1, r.Channel)
	assert.Equal(t, 93, r.Confidence)
	assert.Equal(t, 5, r.Color)
	assert.True(t, r.At.Equal(time.Unix(1764662400, 250e6)), "%v", r.At)

	b64 := base64.StdEncoding.EncodeToString([]byte("川A12345"))
	r, err = ParseCameraPush(push(b64), "")
	require.NoError(t, err, "base64 licence")
	assert.Equal(t, "川A12345", r.Plate)
	assert.Equal(t, "川A12345", r.Raw)
}

func TestParseCameraPushRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		body []byte
		want string
	}{
		"not json":      {[]byte("plate=川A12345"), "camera push:"},
		"other object":  {[]byte(`{"Heartbeat":{}}`), "no AlarmInfoPlate"},
		"no serial":     {[]byte(`{"AlarmInfoPlate":{"result":{"PlateResult":{"license":"川A12345"}}}}`), "no serialno"},
		"no plate read": {push("_无_"), "no licence"},
		"garbage":       {push("@@@@"), "plate \"@@@@\""},
		"base64 junk":   {push(base64.StdEncoding.EncodeToString([]byte("HELLO"))), "plate"},
	} {
		_, err := ParseCameraPush(c.body, "")
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), c.want, name)
		}
	}
}

func TestCameraAnswer(t *testing.T) {
	assert.JSONEq(t, `{"Response_AlarmInfoPlate":{"info":"ok"}}`, string(CameraAnswer(true)))
}

// Issue 27, item 2: what bay cameras really send. A GBK body, by its
// Content-Type or with none (its bytes are not UTF-8); a licence with its
// colour before or after it; the marks of a read without a plate.
func TestCamerasAsTheyAre(t *testing.T) {
	gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes(push("川A55555"))
	require.NoError(t, err)
	for _, ct := range []string{"application/json; charset=GBK", "application/json; charset=gb2312", "application/json", ""} {
		r, err := ParseCameraPush(gbk, ct)
		require.NoError(t, err, "GBK body, Content-Type %q", ct)
		assert.Equal(t, "川A55555", r.Plate, ct)
	}
	_, err = ParseCameraPush(push("川A55555"), "application/json; charset=latin1")
	assert.ErrorContains(t, err, "charset")

	for licence, want := range map[string][2]string{
		"蓝川A55555":      {"川A55555", "blue"},
		"川A55555黄":      {"川A55555", "yellow"},
		"黄绿川AD12345":    {"川AD12345", "yellow-green"},
		"蓝牌 川A55555":    {"川A55555", "blue"},
		"BLUE 川A55555":  {"川A55555", "blue"},
		"green川AD12345": {"川AD12345", "green"},
		"黑A12345":       {"黑A12345", ""}, // 黑 the province (Heilongjiang), not the colour
		"黑川A55555":      {"川A55555", "black"},
	} {
		r, err := ParseCameraPush(push(licence), "")
		require.NoError(t, err, licence)
		assert.Equal(t, want, [2]string{r.Plate, r.Colour}, licence)
	}
	for _, none := range []string{"无车牌", "无牌车", "未识别", " _无_ ", "NoPlate"} {
		_, err := ParseCameraPush(push(none), "")
		assert.ErrorIs(t, err, ErrNoPlate, none)
	}
}
