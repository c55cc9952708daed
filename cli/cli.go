// Package cli implements the triage command: explain a decision (for an OCI spec or the
// containers of Kubernetes manifests), check a policy file, test a policy against a file of
// cases, print the version.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/triage-runtime/triage/policy"
)

// Version is the release version, set at link time with
// -ldflags "-X github.com/triage-runtime/triage/cli.Version=v0.1.0".
var Version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed (invalid policy, unreadable spec)
	exitUsage = 2 // the command line is wrong
)

const usage = `usage: triage COMMAND [flags]

commands:
  explain [flags] BUNDLE_DIR|CONFIG_JSON|MANIFEST|-
                                           show the decision for an OCI spec, or for each
                                           container of Kubernetes manifests, and why
  check [--config FILE]                    validate a policy file
  test FILE...                             check a policy's decisions against a file of cases
                                           (exit 1 when a case fails, 2 when a file is malformed)
  config containerd [--version 1.6|2.x]    print the containerd config that registers the triage handler
  install [flags]                          install the binaries and policy, register the runtime in containerd
  doctor [--config FILE] [--output FMT]    check that this node can run every tier the policy uses
  version                                  print the version

Run "triage COMMAND -h" for a command's flags.
`

// errUsage marks a command-line mistake; its message has already been printed by flag.
var errUsage = errors.New("usage")

// Main runs the triage command with args (without the program name) and returns the exit
// code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "explain":
		err = explain(rest, stdin, stdout, stderr)
	case "check":
		err = check(rest, stdout, stderr)
	case "test":
		err = testCmd(rest, stdout, stderr)
	case "config":
		err = configCmd(rest, stdout, stderr)
	case "install":
		err = install(rest, stdout, stderr)
	case "doctor":
		err = doctor(rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "triage %s\n", Version)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "triage: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	var coded *exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &coded):
		fmt.Fprintf(stderr, "triage %s: %v\n", args[0], err)
		return coded.code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	default:
		fmt.Fprintf(stderr, "triage %s: %v\n", args[0], err)
		return exitError
	}
}

// parse parses flags placed before and after the positional arguments, and returns the
// positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// usageError prints a command-line mistake with the command's flags.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "triage %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

// keyValues is a repeatable k=v flag.
type keyValues map[string]string

func (kv keyValues) String() string {
	var parts []string
	for k, v := range kv {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	kv[k] = v
	return nil
}

// defaultPolicy is the policy a command reads without --config: the one TRIAGE_POLICY names
// (as the shim, in containerd's environment), else policy.DefaultPath.
func defaultPolicy() string {
	if p := os.Getenv("TRIAGE_POLICY"); p != "" {
		return p
	}
	return policy.DefaultPath
}
