// Command containerd-shim-triage-v2 is the containerd runtime shim for
// io.containerd.triage.v2: a small front that hands each call to the node
// daemon triage-shimd (package front).
package main

import (
	"os"

	"github.com/triage-runtime/triage/shim/front"
)

func main() {
	os.Exit(front.Main(os.Args[1:]))
}
