package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The daemon runs on one processor, collects at 50 % heap growth and does
// not sample allocations, unless the environment or --pprof says otherwise.
func TestTuneRuntimeKeepsWhatTheEnvironmentSays(t *testing.T) {
	procs, rate := runtime.GOMAXPROCS(0), runtime.MemProfileRate
	gc := debug.SetGCPercent(100)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(procs)
		debug.SetGCPercent(gc)
		runtime.MemProfileRate = rate
	})

	for _, c := range []struct {
		env                   string // GOMAXPROCS and GOGC given, or ""
		profiling             bool
		procs, gcPct, rateSet int
	}{
		{env: "", profiling: false, procs: 1, gcPct: 50, rateSet: 0},
		{env: "2/100", profiling: true, procs: 2, gcPct: 100, rateSet: 512 * 1024},
	} {
		procsEnv, gcEnv, _ := strings.Cut(c.env, "/")
		t.Setenv("GOMAXPROCS", procsEnv)
		t.Setenv("GOGC", gcEnv)
		runtime.GOMAXPROCS(2)
		runtime.MemProfileRate = 512 * 1024
		tuneRuntime(c.profiling)
		assert.Equal(t, c.procs, runtime.GOMAXPROCS(0), "environment %q", c.env)
		assert.Equal(t, c.gcPct, debug.SetGCPercent(100), "environment %q", c.env)
		assert.Equal(t, c.rateSet, runtime.MemProfileRate, "environment %q, profiling %v", c.env, c.profiling)
	}
}
