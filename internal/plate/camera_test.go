package plate

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func push(license string) []byte {
	return []byte(fmt.Sprintf(`{"AlarmInfoPlate":{"channel":1,"deviceName":"IVS","ipaddr":"192.168.1.64","serialno":"a1b2c3d4-e5f60718",
"result":{"PlateResult":{"colorType":5,"confidence":93,"license":%q,"timeStamp":{"Timeval":{"sec":1764662400,"usec":250000}},"triggerType":8}}}}`, license))
}

func TestParseCameraPush(t *testing.T) {
	r, err := ParseCameraPush(push("川ＡＤ６６０１１"))
	require.NoError(t, err)
	assert.Equal(t, "川AD66011", r.Plate)
	assert.Equal(t, "a1b2c3d4-e5f60718", r.Serial)
	assert.Equal(t, "192.168.1.64", r.IPAddr)
	assert.Equal(t, 1, r.Channel)
	assert.Equal(t, 93, r.Confidence)
	assert.Equal(t, 5, r.Color)
	assert.True(t, r.At.Equal(time.Unix(1764662400, 250e6)), "%v", r.At)

	b64 := base64.StdEncoding.EncodeToString([]byte("川A12345"))
	r, err = ParseCameraPush(push(b64))
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
		_, err := ParseCameraPush(c.body)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), c.want, name)
		}
	}
}

func TestCameraAnswer(t *testing.T) {
	assert.JSONEq(t, `{"Response_AlarmInfoPlate":{"info":"ok"}}`, string(CameraAnswer(true)))
}
