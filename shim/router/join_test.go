package router

import (
	"slices"
	"testing"

	"errors"
	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/triage-runtime/triage/shim/front"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A joining container's `start` gets what containerd 2.4 gives a shim's
// start: BootstrapParams naming it, with the pod's socket_dir and its runtime
// options as an extension.
func TestJoinStartsWithBootstrapParams(t *testing.T) {
	t.Setenv(ttrpcAddressEnv, "/run/c/containerd.sock.ttrpc")
	opts, err := anypb.New(&runtimeoptions.Options{ConfigPath: "/etc/triage/triage.toml"})
	if err != nil {
		t.Fatal(err)
	}
	j := joiner{namespace: "k8s.io", address: "/run/c/containerd.sock", publish: "/usr/bin/containerd", socketDir: "/run/c/s"}
	args, stdin, err := j.start("c1", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-namespace", "k8s.io", "-address", "/run/c/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "start"}
	if !slices.Equal(args, want) {
		t.Errorf("args %q, want %q", args, want)
	}
	var p bootstrap.BootstrapParams
	if err := proto.Unmarshal(stdin, &p); err != nil {
		t.Fatal(err)
	}
	if p.GetInstanceID() != "c1" || p.GetNamespace() != "k8s.io" || p.GetContainerdGrpcAddress() != "/run/c/containerd.sock" ||
		p.GetContainerdTtrpcAddress() != "/run/c/containerd.sock.ttrpc" || p.GetContainerdBinary() != "/usr/bin/containerd" || p.GetSocketDir() != "/run/c/s" {
		t.Errorf("params %v", &p)
	}
	if len(p.GetExtensions()) != 1 || !proto.Equal(p.GetExtensions()[0].GetValue(), opts) {
		t.Errorf("extensions %v, want the runtime options %v", p.GetExtensions(), opts)
	}
}

// TestStartErrorKeepsItsKind: a joining container's failed start reaches containerd with
// the code of its kind, through the start's exit code and the router's gRPC error.
func TestStartErrorKeepsItsKind(t *testing.T) {
	cases := []struct {
		name string
		code int
		kind error
	}{
		{"denied by the policy", front.ExitDenied, errdefs.ErrPermissionDenied},
		{"tier cannot run here", front.ExitUnrunnable, errdefs.ErrFailedPrecondition},
		{"triage-shimd died", front.ExitLost, errdefs.ErrUnavailable},
		{"anything else", front.ExitFailed, errdefs.ErrUnknown},
	}
	for _, tc := range cases {
		err := startError(tc.code, "triage: why")
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.kind)
		}
		if back := errgrpc.ToNative(errgrpc.ToGRPC(err)); !errors.Is(back, tc.kind) {
			t.Errorf("%s: over gRPC it became %v", tc.name, back)
		}
	}
	if startError(0, "") != nil {
		t.Error("exit 0 is an error")
	}
}
