package config

import (
	"crypto/subtle"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"pilebridge/internal/plate"
)

// Plates is where the plates a parking-fee reduction needs come from: the
// VIN table, and cameras above the bays pushing their reads.
type Plates struct {
	// Window: a read this long before a session opened (a car parks, then
	// plugs in), or while it is open, is the session's. Default 10m.
	Window time.Duration `yaml:"window"`
	// FinalWait: with parking_reduction on, a bill that ends without a
	// plate waits this long for one before it is sent without. Default 2m.
	FinalWait time.Duration `yaml:"final_wait"`
	// VINs: VIN -> plate, for piles that report a VIN but not the plate.
	VINs    map[string]string `yaml:"vins"`
	Cameras []Camera          `yaml:"cameras"`
	// Attendants may put a plate on a port's session or waiting bill from
	// the attendant page (/attendant) with their code; the ledger records
	// who.
	Attendants []Attendant `yaml:"attendants"`
}

// Attendant is a person at the station with a short code for the
// attendant page.
type Attendant struct {
	Name string `yaml:"name"`
	Code string `yaml:"code"`
}

// Attendant codes: short enough to type on a phone, long enough that the
// page's lockout (a few wrong tries an address, then a pause) leaves
// guessing hopeless.
const (
	MinAttendantCode = 6
	MaxAttendantCode = 16
	MaxAttendantName = 32
)

// Camera is one LPR camera that pushes its reads to POST /plates/camera.
type Camera struct {
	Serial string `yaml:"serial"` // its serialno, as it sends it
	// From: the addresses its pushes may come from (a camera cannot send
	// the local API's token). Required.
	From []string `yaml:"from"`
	// Secret, if set, is the last part of the URL the camera pushes to
	// (/plates/camera/SECRET), for cameras that let the URL be set.
	Secret string `yaml:"secret"`
	// Channel, if set, limits this entry to the camera's reads of that
	// channel (a camera watching two bays reports them apart).
	Channel *int `yaml:"channel"`
	// Ports are the ports of the bay it watches, as device_no/port_no.
	Ports []string `yaml:"ports"`
}

// UnmarshalYAML takes both forms of plates: the sections above, or, as
// earlier versions had it, the VIN table alone.
func (p *Plates) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		sectioned := false
		for i := 0; i < len(n.Content); i += 2 {
			switch n.Content[i].Value {
			case "window", "final_wait", "vins", "cameras":
				sectioned = true
			}
		}
		if !sectioned {
			return n.Decode(&p.VINs)
		}
	}
	type plain Plates
	return n.Decode((*plain)(p))
}

// Allows says whether a push from addr with secret is from camera c.
func (c Camera) Allows(addr net.IP, secret string) bool {
	if c.Secret != "" && subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return false
	}
	return c.AllowsAddr(addr)
}

// AllowsAddr says whether camera c pushes from addr (its secret aside).
func (c Camera) AllowsAddr(addr net.IP) bool {
	for _, f := range c.From {
		if ip := net.ParseIP(f); ip != nil && ip.Equal(addr) {
			return true
		}
	}
	return false
}

func (c *Config) checkPlates(ck *checker, ports map[string]bool) {
	if c.Plates.Window < 0 || c.Plates.Window > MaxPlateWindow {
		ck.bad("plates.window", "%s: want 0..%s", c.Plates.Window, MaxPlateWindow)
	}
	if c.Plates.FinalWait < 0 || c.Plates.FinalWait > MaxPlateFinalWait {
		ck.bad("plates.final_wait", "%s: want 0..%s (a bill held longer is a bill paid late)", c.Plates.FinalWait, MaxPlateFinalWait)
	}
	for vin, p := range c.Plates.VINs {
		n, err := plate.Normalize(p)
		if err != nil {
			ck.bad("plates.vins."+vin, "%v", err)
			continue
		}
		c.Plates.VINs[vin] = n
	}
	codes := map[string]int{}
	for i, a := range c.Plates.Attendants {
		key := fmt.Sprintf("plates.attendants[%d]", i)
		if n := utf8.RuneCountInString(a.Name); n == 0 || n > MaxAttendantName {
			ck.bad(key+".name", "%q: want 1..%d characters (the ledger records it)", a.Name, MaxAttendantName)
		}
		if n := len(a.Code); n < MinAttendantCode || n > MaxAttendantCode || strings.Trim(a.Code, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			ck.bad(key+".code", "want %d..%d letters or digits (typed on a phone)", MinAttendantCode, MaxAttendantCode)
		}
		if j, dup := codes[a.Code]; dup && a.Code != "" {
			ck.bad(key+".code", "the same as plates.attendants[%d]'s: each person their own", j)
		}
		codes[a.Code] = i
	}
	for i, cam := range c.Plates.Cameras {
		key := fmt.Sprintf("plates.cameras[%d]", i)
		if cam.Serial == "" {
			ck.bad(key+".serial", "required: the serialno the camera sends")
		}
		if len(cam.From) == 0 {
			ck.bad(key+".from", "required: the addresses the camera pushes from (cameras send no token)")
		}
		for j, f := range cam.From {
			if net.ParseIP(f) == nil {
				ck.bad(fmt.Sprintf("%s.from[%d]", key, j), "%q: want an IP address", f)
			}
		}
		if len(cam.Ports) == 0 {
			ck.bad(key+".ports", "required: the ports of the bay it watches (device_no/port_no)")
		}
		for j, p := range cam.Ports {
			if !ports[p] {
				ck.bad(fmt.Sprintf("%s.ports[%d]", key, j), "%q: no such port (want device_no/port_no of a configured port)", p)
			}
		}
	}
}
