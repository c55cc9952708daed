// Command triage is the operator CLI of Triage: explain decisions, check policy files.
package main

import (
	"os"

	"github.com/triage-runtime/triage/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
