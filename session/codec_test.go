package session

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fill sets every field reachable from v to a random non-zero value, so a
// field the codec forgets fails the round trip.
func fill(t *testing.T, rng *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			// any instant in 1970–2200 other than the epoch, to the nanosecond
			v.Set(reflect.ValueOf(time.Unix(0, 1+rng.Int64N(7_258_118_400_000_000_000)).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("%s.%s is not exported: the codec cannot see it", v.Type(), v.Type().Field(i).Name)
			}
			fill(t, rng, v.Field(i))
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, rng, v.Elem())
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 1+rng.IntN(3); i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, rng, k)
			fill(t, rng, e)
			v.SetMapIndex(k, e)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1+rng.IntN(3), 4))
		for i := 0; i < v.Len(); i++ {
			fill(t, rng, v.Index(i))
		}
	case reflect.String:
		b := make([]byte, 1+rng.IntN(20))
		for i := range b {
			b[i] = byte('A' + rng.IntN(26))
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		n := rng.Int64()
		if v.Kind() == reflect.Int && reflect.TypeOf(0).Size() == 4 {
			n = int64(rng.Int32())
		}
		if rng.IntN(2) == 0 {
			n = -n
		}
		if n == 0 {
			n = 1
		}
		v.SetInt(n)
	default:
		t.Fatalf("fill: no rule for %s", v.Type())
	}
}

// Every field of a session survives the stored form, for any values.
func TestCodecRoundTripsEveryField(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(11, 29))
	for i := 0; i < 500; i++ {
		var s Session
		fill(t, rng, reflect.ValueOf(&s).Elem())
		data, err := c.encode(&s)
		require.NoError(t, err)
		got, err := c.decode(data)
		require.NoError(t, err)
		require.Equal(t, &s, got)
	}
}

func TestCodecZeroSession(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	data, err := c.encode(&Session{})
	require.NoError(t, err)
	got, err := c.decode(data)
	require.NoError(t, err)
	assert.Equal(t, &Session{Periods: map[string]*Billed{}}, got)
}

// Sessions stored as JSON by earlier versions are still read, times and all.
func TestCodecReadsJSONSessions(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	at := time.Date(2026, 11, 29, 2, 30, 0, 123456789, time.UTC)
	s := &Session{Order: "20261129103000B1000001", State: Charging, StartTime: at, Charged: true, VIN: "LSTOP103212132001",
		Periods: map[string]*Billed{"flat@00:00": {Type: "flat", MWh: 42_000, Electricity: 6500, Service: 6000}}}
	s.Energy.BaseMWh, s.Energy.LastMWh, s.Energy.CountedMWh, s.Energy.LastAt = 1_000_000, 1_042_000, 42_000, at
	data, err := json.Marshal(s)
	require.NoError(t, err)
	got, err := c.decode(data)
	require.NoError(t, err)
	assert.Equal(t, s, got)
}

func TestCodecRejectsGarbage(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	for _, data := range [][]byte{{0xff}, {0xa1, 0x01}, []byte("{not json"), {0x83, 0x01}} {
		_, err := c.decode(data)
		assert.Error(t, err, "% x", data)
	}
}

// The stored form is what keeps a commit to few pages: a charging session
// with a VIN and one period fits well under half its JSON.
func TestCodecIsCompact(t *testing.T) {
	c, err := newCodec()
	require.NoError(t, err)
	at := time.Date(2026, 11, 29, 2, 30, 0, 123456789, time.UTC)
	s := &Session{Order: "20261129103000B1000001", State: Charging, StartTime: at, OpenedAt: at, Charged: true,
		VIN: "LSTOP103212132001", SOC: 40, HasSOC: true, Seq: 12, LastSent: at,
		Periods: map[string]*Billed{"flat@00:00": {Type: "flat", MWh: 42_000, Electricity: 6500, Service: 6000}}}
	s.Energy = Energy{BaseMWh: 1_000_000_000, BaseAt: at, LastMWh: 1_000_042_000, LastAt: at, ChangedAt: at, RoseFrom: at, CountedMWh: 42_000, ResMWh: 1000}
	js, err := json.Marshal(s)
	require.NoError(t, err)
	data, err := c.encode(s)
	require.NoError(t, err)
	t.Logf("stored session: %d bytes (JSON %d)", len(data), len(js))
	assert.Less(t, len(data), len(js)/2)
}
