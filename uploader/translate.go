package uploader

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"pilebridge/session"
)

// Port is how the platform knows a charging port.
type Port struct {
	DeviceNo   string
	DeviceType int
	PortNo     string
	EnergyCode string
}

// Descriptions sent as state_desc.
const (
	DescCharging    = "充电中"
	DescDone        = "充电完成"
	DescUserStop    = "用户停止"
	DescFault       = "故障停止"
	DescStartFailed = "启动失败"
	DescRecovered   = "断电恢复结算"
	DescCommLost    = "通信中断"
	DescSuperseded  = "新订单开始,本单结算"
	DescNoCharge    = "未开始充电"
	DescTimeout     = "超时未开始充电"
)

// Translator turns session events into P云 records and queues them in the
// outbox: it is the session store's sink.
type Translator struct {
	Outbox      *Outbox
	Ports       map[string]Port // by the session package's port key
	LocalUserID string          // mobile when the pile gives none
	WantsPlate  bool            // the station has parking-fee reduction
	// FinalWait: a finished bill without a plate waits this long for one
	// (AttachPlate) when WantsPlate; 0 sends it at once.
	FinalWait time.Duration
	Now       func() time.Time // time.Now when nil
	Log       zerolog.Logger
}

// EnqueueTx queues the record for e inside the session's transaction.
func (t *Translator) EnqueueTx(tx *bbolt.Tx, port string, e session.Event) error {
	p, ok := t.Ports[port]
	if !ok {
		return fmt.Errorf("event for order %s: port %q is not configured", e.Order, port)
	}
	r := RecordOf(e, p, t.LocalUserID)
	if r.Kind == KindFinal && r.State == StateFinished && r.Plate == "" && t.WantsPlate {
		if t.FinalWait > 0 {
			now := time.Now
			if t.Now != nil {
				now = t.Now
			}
			until := now().Add(t.FinalWait)
			t.Log.Info().Str("order", r.Order).Str("port", port).Time("until", until).
				Msg("bill waits for a plate (parking-fee reduction); sent as it is if none comes")
			return t.Outbox.EnqueueAwaitingPlateTx(tx, port, r, until)
		}
		t.Log.Warn().Str("order", r.Order).Msg("no plate: this bill cannot earn the parking-fee reduction")
		_, err := t.Outbox.enqueueTx(tx, r, Entry{}, true)
		return err
	}
	return t.Outbox.EnqueueTx(tx, r)
}

// Notify wakes the sender.
func (t *Translator) Notify() { t.Outbox.Notify() }

// RecordOf is the platform's record for a session event.
func RecordOf(e session.Event, p Port, localUser string) Record {
	r := Record{
		Order: e.Order, Seq: e.Seq, StartTime: e.Start, EndTime: e.End,
		VIN: e.VIN, Plate: e.Plate, PlateSource: string(e.PlateSource), PlateBy: e.PlateBy, Mobile: e.Mobile, Evidence: e.Evidence,
		QuantityWh: e.QuantityWh, EnergyFen: e.EnergyFen, ServiceFen: e.ServiceFen,
		DeviceNo: p.DeviceNo, DeviceType: p.DeviceType, PortNo: p.PortNo, EnergyCode: p.EnergyCode,
	}
	if r.Mobile == "" {
		r.Mobile = localUser
	}
	if e.HasSOC {
		soc := e.SOC
		r.SOC = &soc
	}
	switch e.Kind {
	case session.EventProgress:
		r.Kind, r.State, r.StateDesc = KindProgress, StateCharging, DescCharging
	case session.EventStartFailed:
		r.Kind, r.State = KindStartFailed, StateStartFailed
		r.QuantityWh, r.EnergyFen, r.ServiceFen = 0, 0, 0
		r.StateDesc = DescStartFailed + ":" + firstOf(e.Detail, reasonText(e.Reason))
	default:
		r.Kind, r.State = KindFinal, StateFinished
		if e.Reason.Abnormal() {
			r.State = StateStartFailed
		}
		r.StateDesc = closedDesc(e)
	}
	return r
}

func closedDesc(e session.Event) string {
	switch e.Reason {
	case session.ReasonCompleted:
		return firstOf(e.Detail, DescDone)
	case session.ReasonUnplugged:
		return firstOf(e.Detail, DescUserStop)
	case session.ReasonFault:
		if e.Detail != "" {
			return DescFault + ":" + e.Detail
		}
		return DescFault
	case session.ReasonAborted:
		if e.Detail != "" {
			return DescStartFailed + ":" + e.Detail
		}
		return DescStartFailed
	case session.ReasonRecovered:
		if e.Detail != "" {
			return DescRecovered + ":" + e.Detail
		}
		return DescRecovered
	}
	return reasonText(e.Reason)
}

func reasonText(r session.Reason) string {
	switch r {
	case session.ReasonPowerFell, session.ReasonCompleted:
		return DescDone
	case session.ReasonUnplugged:
		return DescUserStop
	case session.ReasonCommLost:
		return DescCommLost
	case session.ReasonSuperseded:
		return DescSuperseded
	case session.ReasonRecovered:
		return DescRecovered
	case session.ReasonTimeout:
		return DescTimeout
	case session.ReasonFault:
		return DescFault
	}
	return DescNoCharge
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// portStates and portDescs are how the platform shows a port in each of the
// session engine's states: its port state code and state_desc (the page
// shows the same Chinese texts).
var portStates = map[session.PortState]int{
	session.Idle: PortIdle, session.Plugged: PortOccupied, session.Starting: PortCharging,
	session.Charging: PortCharging, session.Finishing: PortCharging, session.Finished: PortOccupied,
	session.StartFailed: PortOccupied, session.Faulted: PortFault, session.Offline: PortFault,
}

var portDescs = map[session.PortState]string{
	session.Idle: "空闲", session.Plugged: "已插枪", session.Starting: "启动中", session.Charging: DescCharging,
	session.Finishing: "停止中", session.Finished: DescDone, session.StartFailed: DescStartFailed,
	session.Faulted: "故障", session.Offline: DescCommLost,
}

// PortDesc is a port state's text as the platform (and the page) shows it.
func PortDesc(st session.PortState) string { return portDescs[st] }
