package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// tuneRuntime sets the Go runtime for a daemon on a small board: memory
// and wake-ups are what it is short of, not CPU parallelism. Settings the
// environment gives (GOMAXPROCS, GOGC) are kept. profiling keeps the
// allocation sampler for --pprof's heap profiles.
func tuneRuntime(profiling bool) {
	if !profiling {
		// No heap profile will be asked for: do not sample allocations
		// (the sampler's stack table alone is 1.4 MB on a 64-bit board).
		runtime.MemProfileRate = 0
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// One processor: the daemon waits on lines and on the store, and
		// needs a few percent of one core at station size. With more, each
		// of its thousands of wake-ups a second can wake another thread
		// that then spins looking for work (docs/bench.md: idle from about
		// 1.5× to 1.1× the bare client's CPU). GOMAXPROCS in the
		// environment still decides.
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		// Memory is what a board lacks, not CPU: collect when the heap has
		// grown by half, not doubled (docs/bench.md: about 2 MB less at
		// 256 ports for a few hundredths of a percent of a core). GOGC in
		// the environment still decides.
		debug.SetGCPercent(50)
	}
}
