// Package shim is containerd-shim-triage-v2: the runtime-v2 shim containerd
// starts for io.containerd.triage.v2. `start` classifies the workload,
// starts the delegate shim of its tier and makes sure a router daemon serves
// the pod; the daemon (triage-router, package router) forwards the task API;
// `delete` cleans up through the delegate that ran the container.
package shim

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/containerd/containerd/api/types"
	"google.golang.org/protobuf/proto"

	"github.com/triage-runtime/triage/shim/router"
)

// RuntimeType is the containerd runtime type served by this shim.
const RuntimeType = "io.containerd.triage.v2"

// Version is set at build time.
var Version = "dev"

// flags are the arguments containerd passes to every shim invocation.
type flags struct {
	namespace     string
	address       string
	publishBinary string
	id            string
	bundle        string
	debug         bool
	info          bool
	version       bool
	action        string
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("containerd-shim-triage-v2", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.namespace, "namespace", "", "containerd namespace")
	fs.StringVar(&f.address, "address", "", "containerd gRPC address")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "containerd binary (passed on to delegates)")
	fs.StringVar(&f.id, "id", "", "container id")
	fs.StringVar(&f.bundle, "bundle", "", "bundle path (delete)")
	fs.BoolVar(&f.debug, "debug", false, "debug logging")
	fs.BoolVar(&f.info, "info", false, "print runtime info (containerd 2.x)")
	fs.BoolVar(&f.version, "v", false, "print the version")
	// Flags some containerd versions pass that Triage has no use for.
	fs.String("socket", "", "unused")
	fs.Bool("systemd-cgroup", false, "unused")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.action = fs.Arg(0)
	return f, nil
}

// Run executes one shim invocation and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	if err := run(ctx, f, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "containerd-shim-triage-v2 %s: %v\n", f.action, err)
		return 1
	}
	return 0
}

func run(ctx context.Context, f flags, stdin io.Reader, stdout io.Writer) error {
	switch {
	case f.version:
		_, err := fmt.Fprintf(stdout, "containerd-shim-triage-v2 %s\n", Version)
		return err
	case f.info:
		return printInfo(stdout)
	}
	if f.namespace == "" || f.id == "" {
		return fmt.Errorf("-namespace and -id are required (this binary is started by containerd for runtime %s)", RuntimeType)
	}
	router.SetupLogging(f.debug)
	switch f.action {
	case "start":
		in, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		addr, err := start(ctx, f, in)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, addr)
		return err
	case "delete":
		out, err := deleteAction(ctx, f)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	default:
		return fmt.Errorf("unknown action %q: containerd calls start, delete or -info", f.action)
	}
}

// printInfo answers containerd 2.x's `-info` with a RuntimeInfo.
func printInfo(stdout io.Writer) error {
	info := &types.RuntimeInfo{
		Name:    RuntimeType,
		Version: &types.RuntimeVersion{Version: Version},
	}
	b, err := proto.Marshal(info)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
