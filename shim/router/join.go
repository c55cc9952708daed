package router

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/shim/front"
)

// A container that joins its pod on containerd 2.4+ arrives without a
// `start`: start reported task API v3 for the pod, and containerd then only
// dials the pod's shim for the pod's later containers, as it does for runc.
// Create has such a container classified and its spec hardened first, by
// the very `start` containerd would have run, handed to triage-shimd (else
// run in a child). A container it refuses is not created.

// joiner runs `start` for containers that join the pod without one.
type joiner struct {
	// daemon is triage-shimd, installed next to the router.
	daemon string
	// namespace, address, publish and debug are the shim flags containerd
	// passed for the pod; socketDir is the socket_dir of its BootstrapParams.
	namespace, address, publish, socketDir string
	debug                                  bool
	// run runs the child that serves the start when no triage-shimd
	// answers; nil runs it as a plain child.
	run func(*exec.Cmd) (int, error)
}

func newJoiner(namespace, address, publish, socketDir string, debug bool) (joiner, error) {
	self, err := os.Executable()
	if err != nil {
		return joiner{}, err
	}
	return joiner{daemon: filepath.Join(filepath.Dir(self), front.DaemonBinary), namespace: namespace, address: address,
		publish: publish, socketDir: socketDir, debug: debug}, nil
}

// join runs `start` for the container r creates, with the stdin containerd
// would have given it: only releases that speak BootstrapParams (2.4+) send
// containers this way, so BootstrapParams, with the runtime options of r as
// their extension. Start then leaves ./address alone, as containerd keeps
// the address in its bootstrap.json.
func (j joiner) join(id, bundle string, options *anypb.Any) error {
	args, stdin, err := j.start(id, options)
	if err != nil {
		return err
	}
	var stdout, stderr bytes.Buffer
	code := front.Run(j.daemon, args, bundle, os.Environ(), stdin, &stdout, &stderr, j.run)
	return startError(code, strings.TrimSpace(stderr.String()))
}

// startError is the error of a joining container's `start` that exited with code,
// of the kind the code says: containerd and the kubelet tell a refusal
// (PermissionDenied) from a node that cannot run the tier (FailedPrecondition), a
// daemon that died (Unavailable) and anything else (Unknown).
func startError(code int, msg string) error {
	if code == 0 {
		return nil
	}
	if msg == "" {
		msg = fmt.Sprintf("%s start failed without a message", front.DaemonBinary)
	}
	var kind error = errdefs.ErrUnknown
	switch code {
	case front.ExitDenied:
		kind = errdefs.ErrPermissionDenied
	case front.ExitUnrunnable:
		kind = errdefs.ErrFailedPrecondition
	case front.ExitLost:
		kind = errdefs.ErrUnavailable
	}
	return fmt.Errorf("%s: %w", msg, kind)
}

// start is the command line and stdin of the `start` of container id, created
// with options: a delegate it starts puts its socket where containerd asked
// the pod's first one to.
func (j joiner) start(id string, options *anypb.Any) (args []string, stdin []byte, err error) {
	params := &bootstrap.BootstrapParams{
		InstanceID: id, Namespace: j.namespace, LogLevel: bootstrap.LogLevel_LOG_LEVEL_INFO,
		ContainerdGrpcAddress: j.address, ContainerdTtrpcAddress: os.Getenv(ttrpcAddressEnv), ContainerdBinary: j.publish,
	}
	if j.debug {
		params.LogLevel = bootstrap.LogLevel_LOG_LEVEL_DEBUG
	}
	if j.socketDir != "" {
		params.SocketDir = &j.socketDir
	}
	if options != nil {
		params.Extensions = append(params.Extensions, &bootstrap.Extension{Value: options})
	}
	stdin, err = proto.Marshal(params)
	return append(front.ShimFlags(j.namespace, j.address, j.publish, j.debug), "-id", id, "start"), stdin, err
}

// ttrpcAddressEnv names containerd's ttrpc address in a shim's environment,
// as containerd sets it.
const ttrpcAddressEnv = "TTRPC_ADDRESS"
