package billcheck

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func at(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }

// Hand-worked: a pile session seen throughout, one whose end was missed
// (the next began while the bridge was down), and one never seen.
func TestExpectedByHand(t *testing.T) {
	r := Rules{Pile: true, Shows: Step(10_000)}
	sessions := []Session{
		{StartSeq: 10, ChargeSeq: 12, EndSeq: 20, EndMWh: 1_055_000},
		{StartSeq: 30, ChargeSeq: 32, EndSeq: 40, EndMWh: 2_000_000},
		{StartSeq: 50, ChargeSeq: 52, EndSeq: 60, EndMWh: 3_000_000},
	}
	reads := []Read{
		{Seq: 11, MWh: 1_000_000}, {Seq: 15, MWh: 1_030_000}, {Seq: 21, MWh: 1_055_000}, // seen after its end
		{Seq: 31, MWh: 1_500_000}, {Seq: 35, MWh: 1_720_000}, // then down until after 60
		{Seq: 61, MWh: 3_000_000},
	}
	wh, seen := r.Expected(sessions, reads, []int64{36})
	assert.Equal(t, []bool{true, true, false}, seen)
	assert.Equal(t, int64(50), wh[0], "1 050 000 - 1 000 000 on a 10 Wh register")
	assert.Equal(t, int64(670), wh[1], "from the quiet reading at 21 (its counter moved by one since) to its last reading: the next session's energy is mixed in after that")
	wh, _ = r.Expected(sessions, reads, []int64{25, 36})
	assert.Equal(t, int64(220), wh[1], "a restart between the quiet reading and its first: from its first reading")
}

// A session the bridge never read while it ran: billed whole when it read
// the pile quiet before and after, with no other session between.
func TestWholeSessionInGapByHand(t *testing.T) {
	r := Rules{Pile: true, Shows: Step(1000)}
	sessions := []Session{
		{StartSeq: 10, ChargeSeq: 12, EndSeq: 20, EndMWh: 5_000},
		{StartSeq: 30, ChargeSeq: 32, EndSeq: 40, EndMWh: 9_400},
		{StartSeq: 50, ChargeSeq: 52, EndSeq: 60, EndMWh: 12_000},
		{StartSeq: 70, ChargeSeq: 72, EndSeq: 80, EndMWh: 15_000},
	}
	reads := []Read{
		{Seq: 9, MWh: 0}, {Seq: 21, MWh: 5_000}, // the first never seen running, quiet before and after
		{Seq: 45, MWh: 9_400},  // the second too: quiet at 21 before it, at 45 after
		{Seq: 81, MWh: 15_000}, // the third and fourth in one gap: neither is billed
	}
	wh, seen := r.Expected(sessions, reads, nil)
	assert.Equal(t, []bool{true, true, false, false}, seen)
	assert.Equal(t, []int64{5, 4}, wh[:2])
	wh, seen = r.Expected(sessions, reads, []int64{15})
	assert.Equal(t, []bool{false, true, false, false}, seen, "a restart between the quiet readings: the bridge forgot the first")
	assert.Equal(t, int64(4), wh[1])
}

// Meter-only: the baseline is the last low reading before the rise, unless
// a restart fell inside the start window.
func TestMeterOnlyBaseline(t *testing.T) {
	r := Rules{Shows: Step(1000), StartFor: 3 * time.Second, MaxGap: 30 * time.Second}
	s := []Session{{StartSeq: 10, ChargeSeq: 10, EndSeq: 30, EndMWh: 50_000}}
	reads := []Read{{Seq: 9, At: at(9), MWh: 0}, {Seq: 11, At: at(11), MWh: 2_000}, {Seq: 14, At: at(14), MWh: 8_000}, {Seq: 29, At: at(29), MWh: 50_000}}
	wh, _ := r.Expected(s, reads, nil)
	assert.Equal(t, []int64{50}, wh)
	wh, _ = r.Expected(s, reads, []int64{12}) // restarted after the first high reading
	assert.Equal(t, []int64{42}, wh, "counted from the first reading after the restart")
}

func TestRegisters(t *testing.T) {
	assert.EqualValues(t, 1_230_000, Step(10_000)(1_239_999))
	assert.EqualValues(t, int64(100_000_000_000), Float32KWh(1)(100_000_003_000), "float32 at 100 000 kWh steps 7.8 Wh")
}
