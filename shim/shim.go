// Package shim does the work of containerd-shim-triage-v2, the runtime-v2
// shim containerd starts for io.containerd.triage.v2: its small front
// (package front) hands each call to triage-shimd (Main), which runs it.
// `start` classifies the workload, starts the delegate shim of its tier and
// makes sure a router daemon serves the pod; the daemon (triage-router,
// package router) forwards the task API; `delete` cleans up through the
// delegate that ran the container.
package shim

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/front"
	"github.com/triage-runtime/triage/shim/proc"
	"github.com/triage-runtime/triage/shim/router"
)

// RuntimeType is the containerd runtime type served by this shim.
const RuntimeType = "io.containerd.triage.v2"

// Version is set at build time.
var Version = "dev"

// Call is one shim invocation: what containerd gave the process it ran.
type Call struct {
	Args   []string
	Dir    string // the working directory: the bundle, for start
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Procs starts the processes that must be children of containerd's
	// child: proc.Local in that process, the front's in triage-shimd.
	Procs proc.Starter
}

// flags are the arguments containerd passes to every shim invocation, with
// the rest of its call.
type flags struct {
	dir   string
	env   []string
	procs proc.Starter

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
func Run(ctx context.Context, c Call) int {
	f, err := parseFlags(c.Args, c.Stderr)
	if err != nil {
		return 2
	}
	f.dir, f.env, f.procs = c.Dir, c.Env, c.Procs
	if err := run(ctx, f, c.Stdin, c.Stdout); err != nil {
		fmt.Fprintf(c.Stderr, "containerd-shim-triage-v2 %s: %v\n", f.action, err)
		return exitCode(err)
	}
	return 0
}

func run(ctx context.Context, f flags, stdin io.Reader, stdout io.Writer) error {
	switch {
	case f.version:
		_, err := fmt.Fprintf(stdout, "containerd-shim-triage-v2 %s\n", Version)
		return err
	case f.info:
		in, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		return printInfo(ctx, in, f.env, stdout)
	}
	if f.namespace == "" || f.id == "" {
		return fmt.Errorf("-namespace and -id are required (this binary is started by containerd for runtime %s)", RuntimeType)
	}
	logger, closeLog := router.BundleLogger(f.dir, f.debug)
	defer closeLog()
	ctx = log.WithLogger(ctx, logrus.NewEntry(logger))
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

// printInfo answers containerd 2.x's `-info` (stdin: the runtime options as
// a marshalled Any) with a RuntimeInfo.
func printInfo(ctx context.Context, in []byte, env []string, stdout io.Writer) error {
	info := &types.RuntimeInfo{
		Name:    RuntimeType,
		Version: &types.RuntimeVersion{Version: Version},
	}
	// Without features CRI promises the kubelet nothing (no recursive
	// read-only mounts, no user namespaces): safe, and what containerd
	// does when -info fails.
	info.Features, _ = delegateFeatures(ctx, in, env)
	b, err := proto.Marshal(info)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// errMixedTiers: the policy's tiers do not share one delegate configuration.
var errMixedTiers = errors.New("the policy's tiers do not all run on the same runc configuration")

// delegateFeatures returns the OCI runtime features of the delegate when
// every tier of the policy runs on runc with the same options. CRI turns
// features into promises to the kubelet; a tier on gVisor or Kata might not
// keep runc's, so a mixed policy reports none.
func delegateFeatures(ctx context.Context, in []byte, env []string) (*anypb.Any, error) {
	var opts *anypb.Any
	if len(in) > 0 {
		opts = &anypb.Any{}
		if err := proto.Unmarshal(in, opts); err != nil {
			return nil, err
		}
	}
	pol, err := loadPolicy(opts, env)
	if err != nil {
		return nil, err
	}
	tier, ok := pol.Tier(pol.DefaultTier)
	if !ok {
		return nil, errMixedTiers
	}
	want := delegateOptions(tier)
	for _, t := range pol.Tiers {
		if !t.IsRunc() || delegateOptions(t) != want || t.ShimPath != tier.ShimPath {
			return nil, errMixedTiers
		}
	}
	optsAny, err := want.Any()
	if err != nil {
		return nil, err
	}
	optsB, err := proto.Marshal(optsAny)
	if err != nil {
		return nil, err
	}
	var di *types.RuntimeInfo
	if tier.Hosted() {
		// What runc's shim answers, from the same library in this process.
		di, err = manager.NewShimManager(tier.Runtime).Info(ctx, bytes.NewReader(optsB))
	} else {
		di, err = shimInfo(ctx, tier, optsB)
	}
	if err != nil {
		return nil, err
	}
	return di.GetFeatures(), nil
}

// shimInfo is the RuntimeInfo the tier's delegate shim reports with options.
func shimInfo(ctx context.Context, tier *policy.Tier, options []byte) (*types.RuntimeInfo, error) {
	binary, err := delegate.Resolve(tier.Runtime, tier.ShimPath, "")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, binary, "-info")
	cmd.Stdin = bytes.NewReader(options)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -info: %w", binary, err)
	}
	var di types.RuntimeInfo
	if err := proto.Unmarshal(out, &di); err != nil {
		return nil, err
	}
	return &di, nil
}

// exitCode is the exit code of a failed call: its kind, which a caller that runs the call
// itself (the router) turns back into an error code.
func exitCode(err error) int {
	var refusal *hardening.Error
	switch {
	case errors.Is(err, classifier.ErrDenied) || errors.As(err, &refusal):
		return front.ExitDenied
	case errors.Is(err, ErrTierUnrunnable):
		return front.ExitUnrunnable
	}
	return front.ExitFailed
}
