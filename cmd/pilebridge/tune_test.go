package main

import (
	"runtime"
	"runtime/debug"
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

	t.Setenv("GOMAXPROCS", "")
	t.Setenv("GOGC", "")
	runtime.GOMAXPROCS(2)
	runtime.MemProfileRate = 512 * 1024
	tuneRuntime(false)
	assert.Equal(t, 1, runtime.GOMAXPROCS(0))
	assert.Equal(t, 50, debug.SetGCPercent(100))
	assert.Zero(t, runtime.MemProfileRate)

	t.Setenv("GOMAXPROCS", "2")
	t.Setenv("GOGC", "100")
	runtime.GOMAXPROCS(2)
	runtime.MemProfileRate = 512 * 1024
	tuneRuntime(true)
	assert.Equal(t, 2, runtime.GOMAXPROCS(0))
	assert.Equal(t, 100, debug.SetGCPercent(100))
	assert.Equal(t, 512*1024, runtime.MemProfileRate)
}
