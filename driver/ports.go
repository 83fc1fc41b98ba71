package driver

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PortInfo describes a serial port found in sysfs.
type PortInfo struct {
	Name         string `json:"name"` // /dev/ttyUSB0
	Driver       string `json:"driver,omitempty"`
	VID          string `json:"vid,omitempty"`
	PID          string `json:"pid,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	ByID         string `json:"by_id,omitempty"` // stable /dev/serial/by-id path
}

// ListPorts finds serial ports from sysfs alone: nothing is opened, so a line
// in use keeps its settings (go.bug.st/serial's enumerator opens every ttyS*
// to weed out placeholders, resetting it to 9600 8N1). sysRoot is "/sys" and
// devRoot "/dev" except in tests.
func ListPorts(sysRoot, devRoot string) ([]PortInfo, error) {
	entries, err := os.ReadDir(filepath.Join(sysRoot, "class", "tty"))
	if err != nil {
		return nil, err
	}
	byID := map[string]string{}
	links, _ := filepath.Glob(filepath.Join(devRoot, "serial", "by-id", "*"))
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil {
			byID[filepath.Base(target)] = l
		}
	}
	var out []PortInfo
	for _, e := range entries {
		dir := filepath.Join(sysRoot, "class", "tty", e.Name())
		dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device"))
		if err != nil {
			continue // virtual terminals, ptys: no hardware behind them
		}
		// An 8250 placeholder (ttyS with nothing wired) has port type 0.
		if t, err := os.ReadFile(filepath.Join(dir, "type")); err == nil && strings.TrimSpace(string(t)) == "0" {
			continue
		}
		p := PortInfo{Name: filepath.Join(devRoot, e.Name()), ByID: byID[e.Name()]}
		if drv, err := filepath.EvalSymlinks(filepath.Join(dev, "driver")); err == nil {
			p.Driver = filepath.Base(drv)
		}
		// USB details live on an ancestor of the tty's device.
		for d := dev; strings.HasPrefix(d, sysRoot) && d != sysRoot; d = filepath.Dir(d) {
			vid := readAttr(d, "idVendor")
			if vid == "" {
				continue
			}
			p.VID, p.PID = vid, readAttr(d, "idProduct")
			p.Serial, p.Manufacturer, p.Product = readAttr(d, "serial"), readAttr(d, "manufacturer"), readAttr(d, "product")
			break
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readAttr(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
