// Package uploader knows the platform: it signs requests, keeps a durable
// outbox of charging records and delivers them in order, with retries.
package uploader

import (
	"strings"
	"time"

	"pilebridge/internal/pii"
	"pilebridge/session"
)

// Kind says what a charging record reports.
type Kind string

const (
	KindProgress    Kind = "progress"     // state 2, while charging
	KindFinal       Kind = "final"        // the bill: state 3, or -1 when charging ended abnormally
	KindStartFailed Kind = "start_failed" // state -1, quantity 0
)

// Platform charging states (replenish_state).
const (
	StateStartFailed = -1
	StateCharging    = 2
	StateFinished    = 3
)

// Record is one replenish/sync report as stored in the outbox: without the
// public fields and signature, which each attempt adds afresh.
type Record struct {
	Kind      Kind      `json:"kind"`
	Order     string    `json:"order"`
	Seq       int       `json:"seq"` // per order, increasing
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	VIN       string    `json:"vin,omitempty"`
	Plate     string    `json:"plate,omitempty"`
	// PlateSource is where the plate came from (vin, camera, api,
	// attendant): for the ledger, not sent.
	PlateSource string `json:"plate_source,omitempty"`
	// PlateBy: the attendant who typed the plate (plates.attendants), for
	// the ledger; not sent.
	PlateBy    string `json:"plate_by,omitempty"`
	Mobile     string `json:"mobile"`
	QuantityWh int64  `json:"quantity"`
	EnergyFen  int64  `json:"energy_value"`
	ServiceFen int64  `json:"fee_value"`
	State      int    `json:"state"`
	StateDesc  string `json:"state_desc"`
	DeviceNo   string `json:"device_no"`
	DeviceType int    `json:"device_type"`
	PortNo     string `json:"port_no"`
	EnergyCode string `json:"energy_code"`
	SOC        *int   `json:"soc,omitempty"`
	// Evidence: the meter readings a bill's quantity comes from, for the
	// ledger and `pilebridge sessions --order` (not sent).
	Evidence *session.Evidence `json:"evidence,omitempty"`
}

// Masked is the record with its personal data masked (internal/pii): what
// the local API shows without its token.
func (r Record) Masked() Record {
	r.VIN, r.Plate, r.Mobile = pii.VIN(r.VIN), pii.Plate(r.Plate), pii.Mobile(r.Mobile)
	return r
}

// Terminal says the record ends its order: never dropped or coalesced.
func (r Record) Terminal() bool { return r.Kind != KindProgress }

// Scrub masks, in text from outside (the platform's message quoting the
// record, an answer's snippet), the record's own VIN, plate and mobile, so
// that what is stored and shown of a failure holds no more than the masks
// (internal/pii).
func (r Record) Scrub(text string) string {
	for _, v := range []struct{ full, masked string }{
		{r.VIN, pii.VIN(r.VIN)}, {r.Plate, pii.Plate(r.Plate)}, {r.Mobile, pii.Mobile(r.Mobile)},
	} {
		if len([]rune(v.full)) >= 4 {
			text = strings.ReplaceAll(text, v.full, v.masked)
		}
	}
	return text
}

// scrubbed is an error whose text had personal data masked; the error
// itself is kept for errors.Is and errors.As (the outcome of a send).
type scrubbed struct {
	err  error
	text string
}

func (e *scrubbed) Error() string { return e.text }
func (e *scrubbed) Unwrap() error { return e.err }

// scrubErr is err with r's personal data masked in its text.
func scrubErr(err error, r Record) error {
	if err == nil {
		return nil
	}
	if t := r.Scrub(err.Error()); t != err.Error() {
		return &scrubbed{err: err, text: t}
	}
	return err
}
