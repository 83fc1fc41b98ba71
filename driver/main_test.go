package driver_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs 8 tests at a time unless -test.parallel says otherwise:
// they wait on ptys, timeouts and backoffs, not on the two cores.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}
