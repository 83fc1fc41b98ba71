// Package cli holds what the two commands share about their flags.
package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Flags is a subcommand's flag set whose -h/--help prints, to out, the
// synopsis, what the command does, and every flag with its description.
// Parse then returns flag.ErrHelp, which the commands treat as success
// (exit 0).
func Flags(name, synopsis, about string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n", synopsis, about)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// WantsHelp says whether args ask for help before anything else.
func WantsHelp(args []string) bool {
	for _, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "h", "help":
			if strings.HasPrefix(a, "-") {
				return true
			}
		}
	}
	return false
}
