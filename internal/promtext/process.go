package promtext

import (
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The Go runtime's and the process's own families, under the names every
// Prometheus client uses for them (alerts and dashboards rely on them, for
// example process_start_time_seconds for restarts).
var (
	goGoroutines = &Desc{Name: "go_goroutines", Help: "Number of goroutines that currently exist.", Type: Gauge}
	goThreads    = &Desc{Name: "go_threads", Help: "Number of OS threads created.", Type: Gauge}
	goInfo       = &Desc{Name: "go_info", Help: "Information about the Go environment.", Type: Gauge, Labels: []string{"version"}}
	goAlloc      = &Desc{Name: "go_memstats_alloc_bytes", Help: "Number of bytes allocated in heap and currently in use.", Type: Gauge}
	goSys        = &Desc{Name: "go_memstats_sys_bytes", Help: "Number of bytes obtained from system.", Type: Gauge}
	goNextGC     = &Desc{Name: "go_memstats_next_gc_bytes", Help: "Number of heap bytes when next garbage collection will take place.", Type: Gauge}
	goGCCycles   = &Desc{Name: "go_gc_cycles_total", Help: "Completed garbage collection cycles.", Type: Counter}
	procCPU      = &Desc{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds.", Type: Counter}
	procRSS      = &Desc{Name: "process_resident_memory_bytes", Help: "Resident memory size in bytes.", Type: Gauge}
	procVirt     = &Desc{Name: "process_virtual_memory_bytes", Help: "Virtual memory size in bytes.", Type: Gauge}
	procStart    = &Desc{Name: "process_start_time_seconds", Help: "Start time of the process since unix epoch in seconds.", Type: Gauge}
	procFDs      = &Desc{Name: "process_open_fds", Help: "Number of open file descriptors.", Type: Gauge}
	procMaxFDs   = &Desc{Name: "process_max_fds", Help: "Maximum number of open file descriptors.", Type: Gauge}
)

var runtimeSamples = []string{"/sched/goroutines:goroutines", "/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes", "/gc/heap/goal:bytes", "/gc/cycles/total:gc-cycles"}

// AddRuntime adds the Go runtime's figures (runtime/metrics: no
// stop-the-world, unlike runtime.ReadMemStats) and, on Linux, the process's
// from /proc/self. A figure that cannot be read is left out.
func (s *Scrape) AddRuntime() {
	ss := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		ss[i].Name = name
	}
	metrics.Read(ss)
	for i, d := range []*Desc{goGoroutines, goAlloc, goSys, goNextGC, goGCCycles} {
		if ss[i].Value.Kind() == metrics.KindUint64 {
			s.Add(d, float64(ss[i].Value.Uint64()))
		}
	}
	s.Add(goInfo, 1, runtime.Version())
	s.addProcess()
}

// addProcess reads /proc/self/stat (fields as in proc(5)).
func (s *Scrape) addProcess() {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, state
	field := func(n int) (float64, bool) {
		if n-3 >= len(f) {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[n-3], 64)
		return v, err == nil
	}
	const ticks = 100 // USER_HZ on every Linux architecture
	if u, ok := field(14); ok {
		if st, ok := field(15); ok {
			s.Add(procCPU, (u+st)/ticks)
		}
	}
	if v, ok := field(20); ok {
		s.Add(goThreads, v)
	}
	if v, ok := field(23); ok {
		s.Add(procVirt, v)
	}
	if v, ok := field(24); ok {
		s.Add(procRSS, v*float64(os.Getpagesize()))
	}
	if v, ok := field(22); ok {
		if boot, ok := bootTime(); ok {
			s.Add(procStart, boot+v/ticks)
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.Add(procFDs, float64(len(fds)))
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		s.Add(procMaxFDs, float64(lim.Cur))
	}
}

// bootTime is btime of /proc/stat: the boot, in seconds since the epoch.
func bootTime() (float64, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			t, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return t, err == nil
		}
	}
	return 0, false
}
