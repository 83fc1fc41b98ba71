package boardtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pilebridge/internal/procmem"
)

// TestBoardBench is `make bench-board`: on the emulated board, the bridge
// as the README deploys it against a bare Modbus client (pilesim floor)
// making the same reads of the same simulated pile over the same adapter.
// The floor runs before and after the bridge (one serial line, one master)
// and the mean is used. It prints the bridge's CPU idle and charging as a
// ratio to the floor, its RSS and working set, and boot-to-READY; the
// session it charges must bill the meter's delta exactly. docs/bench.md
// keeps the figures and what emulation can and cannot tell.
func TestBoardBench(t *testing.T) {
	image := boardImage(t, "the board benchmark", "make bench-board")
	window := time.Minute
	if s := os.Getenv("BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second {
			t.Fatalf("BENCH_WINDOW=%q: want a duration of at least 10s", s)
		}
		window = d
	}
	r := newRig(t, image)
	version := os.Getenv("PILEBRIDGE_BOARD_VERSION")
	if version == "" {
		version = "0.0.0+board"
	}
	r.buildDeb(version, filepath.Join(r.work, "dist"))
	r.buildPilesim()

	r.vm.boot()
	r.deploy()
	r.waitActive()
	r.waitState("idle", 2*time.Minute)
	r.vm.host(r.work, "scp pilesim board:", nil)
	t.Logf("board: %s; %s; %s CPUs; CLK_TCK %s", r.vm.on("uname -m"), r.vm.on("pilebridge --version"),
		r.vm.on("nproc"), r.vm.on("getconf CLK_TCK"))

	// boot to READY: the unit is enabled, a boot starts it by itself. The
	// deploy's files are synced first: a cut seconds after `install`
	// leaves the secret empty, and the daemon refuses to start (exit 78)
	r.vm.on("sync")
	r.vm.cut()
	r.vm.boot()
	r.waitActive()
	u := r.unitTimes()
	bootReady := time.Duration(u["ActiveEnterTimestampMonotonic"]) * time.Microsecond
	execReady := time.Duration(u["ActiveEnterTimestampMonotonic"]-u["ExecMainStartTimestampMonotonic"]) * time.Microsecond
	r.waitState("idle", 2*time.Minute)

	r.vm.on("systemctl stop pilebridge")
	floorBefore := r.floorCPU(window)

	r.vm.on("systemctl start pilebridge")
	r.waitActive()
	r.waitState("idle", 2*time.Minute)
	time.Sleep(5 * time.Second) // past the first polls and the first upload
	idle := r.bridgeCPU(window)

	var charging cpuWindow
	var rss map[string]int64
	var touched int64 // kB of file pages touched in the working-set window
	delta := r.charge(func() {
		r.waitState("charging", time.Minute)
		time.Sleep(3 * time.Second)
		charging = r.bridgeCPU(window)
		// The working set is what a window of its own touches, after the
		// CPU window: on 32-bit ARM the kernel keeps the accessed bits by
		// taking a fault on a page's first touch after they are cleared,
		// and those faults must not count as the bridge's CPU.
		pid := r.unit()["MainPID"]
		r.vm.on("echo 1 > /proc/" + pid + "/clear_refs")
		time.Sleep(window + 5*time.Second) // a progress upload (1 min) falls in it
		rss = r.procStatus(pid, "VmRSS", "VmHWM", "RssAnon", "RssFile")
		maps, err := procmem.ParseSmaps(strings.NewReader(r.vm.on("cat /proc/"+pid+"/smaps")), "smaps on the board")
		must(t, err)
		touched = procmem.FileTouched(maps) / 1024
	})
	r.expectBill("bench session", delta)

	r.vm.on("systemctl stop pilebridge")
	floorAfter := r.floorCPU(window)
	floor := (floorBefore.pct() + floorAfter.pct()) / 2

	for _, w := range []struct {
		name string
		w    cpuWindow
	}{{"idle", idle}, {"charging", charging}, {"floor after", floorAfter}} {
		// the same reads: the pile counts the requests it had
		if d := w.w.readsPerSec() / floorBefore.readsPerSec(); d < 0.9 || d > 1.1 {
			t.Errorf("%s: %.2f reads/s against the floor's %.2f: not the same reads", w.name, w.w.readsPerSec(), floorBefore.readsPerSec())
		}
	}
	ratio := func(w cpuWindow) string {
		if floor <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", w.pct()/floor)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| on the emulated board (%s windows) | CPU, %% of one core | × the floor | reads/s |\n|---|---|---|---|\n", window)
	fmt.Fprintf(&b, "| floor (pilesim floor), before / after | %.2f / %.2f | 1 | %.2f / %.2f |\n",
		floorBefore.pct(), floorAfter.pct(), floorBefore.readsPerSec(), floorAfter.readsPerSec())
	fmt.Fprintf(&b, "| bridge, pile idle | %.2f | %s | %.2f |\n", idle.pct(), ratio(idle), idle.readsPerSec())
	fmt.Fprintf(&b, "| bridge, charging | %.2f | %s | %.2f |\n", charging.pct(), ratio(charging), charging.readsPerSec())
	fmt.Fprintf(&b, "\nbridge while charging: working set %.1f MB (own %.1f, file pages touched in the window %.1f); RSS %.1f MB (file pages mapped %.1f), peak %.1f MB\n",
		mb(rss["RssAnon"]+touched), mb(rss["RssAnon"]), mb(touched), mb(rss["VmRSS"]), mb(rss["RssFile"]), mb(rss["VmHWM"]))
	fmt.Fprintf(&b, "boot to READY: %.1f s after the kernel started; %.2f s from exec to READY=1\n",
		bootReady.Seconds(), execReady.Seconds())
	if t.Failed() {
		fmt.Fprintf(&b, "bench session: the meter delivered %d Wh; its bill did NOT match (above)\n", delta)
	} else {
		fmt.Fprintf(&b, "bench session billed exactly: %d Wh\n", delta)
	}
	t.Log(b.String())
	if out := os.Getenv("BENCH_OUT"); out != "" {
		must(t, os.WriteFile(out, []byte(b.String()), 0o644))
	}
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// buildPilesim builds the armhf pilesim into the work directory, for the
// board's floor.
func (r *rig) buildPilesim() {
	t := r.t
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(r.work, "pilesim"), "./cmd/pilesim")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pilesim armv7: %v\n%s", err, out)
	}
}

// cpuWindow is a process's CPU over a stretch of the board's uptime, and
// the requests the pile had meanwhile.
type cpuWindow struct {
	ticks, hz int64
	secs      float64
	reads     uint64
}

func (w cpuWindow) pct() float64 { return 100 * float64(w.ticks) / float64(w.hz) / w.secs }

func (w cpuWindow) readsPerSec() float64 { return float64(w.reads) / w.secs }

// sample is the board's uptime and pid's user+system ticks, read in one go.
func (r *rig) sample(pid string) (uptime float64, ticks int64) {
	t := r.t
	out := r.vm.on(fmt.Sprintf(`read up _ </proc/uptime && echo $up $(cut -d')' -f2 /proc/%s/stat | awk '{print $12+$13}')`, pid))
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("uptime and ticks of pid %s: %q", pid, out)
	}
	up, err1 := strconv.ParseFloat(f[0], 64)
	tk, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("uptime and ticks of pid %s: %q", pid, out)
	}
	return up, tk
}

// measure samples pid's CPU over d of the board's time.
func (r *rig) measure(pid string, d time.Duration) cpuWindow {
	hz, err := strconv.ParseInt(r.vm.on("getconf CLK_TCK"), 10, 64)
	must(r.t, err)
	reads0 := r.pileReads()
	up0, t0 := r.sample(pid)
	time.Sleep(d)
	up1, t1 := r.sample(pid)
	return cpuWindow{ticks: t1 - t0, hz: hz, secs: up1 - up0, reads: r.pileReads() - reads0}
}

func (r *rig) bridgeCPU(d time.Duration) cpuWindow {
	pid := r.unit()["MainPID"]
	w := r.measure(pid, d)
	if now := r.unit()["MainPID"]; now != pid {
		r.t.Fatalf("the daemon restarted during the window (MainPID %s → %s)", pid, now)
	}
	return w
}

// floorCPU runs the bare client on the board's adapter with the bridge's
// read (the README's pile: ref-ac, one block of 21 holding registers at 0,
// slave 1, 9600 8N1, the default 1 s poll) and measures it.
func (r *rig) floorCPU(d time.Duration) cpuWindow {
	t := r.t
	dev := "/dev/serial/by-id/" + r.vm.on("ls /dev/serial/by-id/")
	pid := r.vm.on(fmt.Sprintf("nohup /root/pilesim floor --serial %s --baud 9600 --slaves 1 --fc 3 --addr 0 --qty 21 --interval 1s >/root/floor.log 2>&1 </dev/null & echo $!", dev))
	defer r.vm.ssh("kill "+pid, nil)
	time.Sleep(5 * time.Second)
	w := r.measure(pid, d)
	if _, err := r.vm.ssh("kill -0 "+pid, nil); err != nil {
		t.Fatalf("the floor client stopped during the window: %s", r.vm.on("cat /root/floor.log"))
	}
	return w
}

func (r *rig) pileReads() uint64 { return r.slave.ReadCount() }

// unitTimes are the unit's monotonic timestamps, µs since the kernel started.
func (r *rig) unitTimes() map[string]int64 {
	out := r.vm.on("systemctl show pilebridge -p ActiveEnterTimestampMonotonic -p ExecMainStartTimestampMonotonic")
	m := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			must(r.t, err)
			m[k] = n
		}
	}
	return m
}

// procStatus reads keys (kB) from /proc/pid/status on the board.
func (r *rig) procStatus(pid string, keys ...string) map[string]int64 {
	out := r.vm.on("cat /proc/" + pid + "/status")
	m := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		for _, k := range keys {
			if rest, ok := strings.CutPrefix(l, k+":"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					n, err := strconv.ParseInt(f[0], 10, 64)
					must(r.t, err)
					m[k] = n
				}
			}
		}
	}
	return m
}
