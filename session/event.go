package session

import "time"

// EventKind says what happened to a session.
type EventKind string

const (
	EventProgress    EventKind = "progress"     // open and delivering: energy and fees so far
	EventClosed      EventKind = "closed"       // the bill
	EventStartFailed EventKind = "start_failed" // ended without delivering
)

// Reason says why a session closed, in the session's own words; the
// uploader turns it into the platform's state and text.
type Reason string

const (
	ReasonCompleted  Reason = "completed"  // the pile said finished
	ReasonUnplugged  Reason = "unplugged"  // the pile went idle without saying finished
	ReasonPowerFell  Reason = "power_fell" // meter-only: power stayed below the stop threshold
	ReasonFault      Reason = "fault"      // the pile faulted while charging
	ReasonAborted    Reason = "aborted"    // the pile reported a failed start after delivering
	ReasonRecovered  Reason = "recovered"  // found ended after a restart
	ReasonCommLost   Reason = "comm_lost"  // the pile was silent for offline_close
	ReasonSuperseded Reason = "superseded" // a new session on the pile proved this one ended
	ReasonNoCharge   Reason = "no_charge"  // start failed: the pile never charged
	ReasonTimeout    Reason = "start_timeout"
)

// Abnormal says the session ended in a way the platform calls abnormal.
func (r Reason) Abnormal() bool { return r == ReasonFault || r == ReasonAborted }

// Event is what the session package reports: one per opened-and-delivering
// interval (progress), and exactly one at the end (closed or start failed).
type Event struct {
	Kind        EventKind
	Order       string
	Seq         int // per order, increasing
	Start, End  time.Time
	QuantityWh  int64
	EnergyFen   int64
	ServiceFen  int64
	Reason      Reason // closed and start failed
	Detail      string // the pile's own words: stop reason or fault text
	VIN         string
	Plate       string
	PlateSource PlateSource // where Plate came from
	PlateBy     string      // the attendant who typed it
	Mobile      string      // from the pile, when it reports one
	SOC         int
	HasSOC      bool
	// Evidence: the readings the quantity comes from (closing events).
	Evidence *Evidence
}

// Terminal says the event ends its order.
func (e Event) Terminal() bool { return e.Kind != EventProgress }
