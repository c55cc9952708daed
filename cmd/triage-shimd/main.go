// Command triage-shimd does the work of containerd-shim-triage-v2's calls
// (classify, harden, start the delegate and the router), as a node daemon
// with the policy compiled and containerd's connection open, or for one
// call. It is started by containerd-shim-triage-v2, never by hand.
package main

import (
	"context"
	"os"

	"github.com/triage-runtime/triage/shim"
)

func main() {
	os.Exit(shim.Main(context.Background(), os.Args[1:]))
}
