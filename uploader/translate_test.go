package uploader

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"pilebridge/session"
)

// The platform's states and texts for each way a session ends (FACTS.md:
// 2 charging, 3 finished, -1 start failed or charging abnormal).
func TestRecordOfEveryEvent(t *testing.T) {
	port := Port{DeviceNo: "D7", DeviceType: 1, PortNo: "2", EnergyCode: "CN_DC"}
	start := time.Date(2026, 3, 14, 4, 0, 0, 0, time.UTC)
	cases := []struct {
		ev    session.Event
		kind  Kind
		state int
		desc  string
		qty   int64
	}{
		{session.Event{Kind: session.EventProgress}, KindProgress, 2, "充电中", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonCompleted, Detail: "SOC已充满"}, KindFinal, 3, "SOC已充满", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonCompleted}, KindFinal, 3, "充电完成", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonUnplugged}, KindFinal, 3, "用户停止", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonPowerFell}, KindFinal, 3, "充电完成", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonFault, Detail: "绝缘故障"}, KindFinal, -1, "故障停止:绝缘故障", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonAborted, Detail: "绝缘检测失败"}, KindFinal, -1, "启动失败:绝缘检测失败", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonRecovered}, KindFinal, 3, "断电恢复结算", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonRecovered, Detail: "SOC已充满"}, KindFinal, 3, "断电恢复结算:SOC已充满", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonCommLost}, KindFinal, 3, "通信中断", 42},
		{session.Event{Kind: session.EventClosed, Reason: session.ReasonSuperseded}, KindFinal, 3, "新订单开始,本单结算", 42},
		{session.Event{Kind: session.EventStartFailed, Reason: session.ReasonAborted, Detail: "车辆未响应"}, KindStartFailed, -1, "启动失败:车辆未响应", 0},
		{session.Event{Kind: session.EventStartFailed, Reason: session.ReasonTimeout}, KindStartFailed, -1, "启动失败:超时未开始充电", 0},
		{session.Event{Kind: session.EventStartFailed, Reason: session.ReasonNoCharge}, KindStartFailed, -1, "启动失败:未开始充电", 0},
	}
	for _, c := range cases {
		c.ev.Order, c.ev.Seq, c.ev.Start, c.ev.End = "O1", 3, start, start.Add(time.Hour)
		c.ev.QuantityWh, c.ev.EnergyFen, c.ev.ServiceFen = 42, 4, 3
		c.ev.SOC, c.ev.HasSOC = 80, true
		r := RecordOf(c.ev, port, "local-user")
		name := string(c.ev.Kind) + "/" + string(c.ev.Reason)
		assert.Equal(t, c.kind, r.Kind, name)
		assert.Equal(t, c.state, r.State, name)
		assert.Equal(t, c.desc, r.StateDesc, name)
		assert.Equal(t, c.qty, r.QuantityWh, name)
		assert.Equal(t, "local-user", r.Mobile, name)
		assert.Equal(t, "D7", r.DeviceNo)
		assert.Equal(t, 1, r.DeviceType)
		assert.Equal(t, "CN_DC", r.EnergyCode)
		assert.Equal(t, 80, *r.SOC)
		assert.Equal(t, start.Add(time.Hour), r.EndTime)
	}
	r := RecordOf(session.Event{Kind: session.EventClosed, Reason: session.ReasonCompleted, Mobile: "13800138000"}, port, "local-user")
	assert.Equal(t, "13800138000", r.Mobile, "the pile's mobile wins over the local user id")
	assert.Nil(t, RecordOf(session.Event{Kind: session.EventProgress}, port, "u").SOC, "no SOC reported: none sent")
}
