// Command triage-router is the per-pod daemon of containerd-shim-triage-v2:
// it forwards containerd's task API to the pod's delegate shims. It is
// started by the shim, never by hand.
package main

import (
	"context"
	"os"

	"github.com/triage-runtime/triage/shim/router"
)

func main() {
	os.Exit(router.Main(context.Background(), os.Args[1:]))
}
