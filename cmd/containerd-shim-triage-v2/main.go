// Command containerd-shim-triage-v2 is the containerd runtime shim for
// io.containerd.triage.v2.
package main

import (
	"context"
	"os"

	"github.com/triage-runtime/triage/shim"
)

func main() {
	os.Exit(shim.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
