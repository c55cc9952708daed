package shim

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/shim/state"
)

// A pod an earlier Triage started relays to runc's shim: its new members are
// routed to that shim, and the pod does not count as hosted.
func TestGroupDelegate(t *testing.T) {
	const binary = "/usr/bin/containerd-shim-runc-v2"
	dir := t.TempDir()
	sock := filepath.Join(dir, "group.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	live := "unix://" + sock

	// The pod's sandbox runs in a runc shim; the new container's bundle is its sibling.
	pod, err := state.LockPod(dir+"/containerd.sock", "k8s.io", "sb")
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Remove()
	sandbox := filepath.Join(dir, "sb")
	if err := os.Mkdir(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := state.WriteContainer(sandbox, state.Container{Pod: "sb", Delegate: state.Delegate{
		Binary: binary, Address: live, Version: 3, Options: []byte("opts"),
	}}); err != nil {
		t.Fatal(err)
	}
	if err := pod.SetDecision(struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := pod.AddMember("sb"); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "c1")
	inPod := &specs.Spec{Annotations: map[string]string{annotationSandboxID: "sb"}}

	if podHosted(pod, bundle) {
		t.Error("a pod whose sandbox runs in runc's shim counts as hosted")
	}
	if r, ok := groupDelegate(bundle, runcGroup(inPod, "c1"), pod, "sb", []byte("opts")); !ok || r.Address != live || r.Version != 3 || r.Binary != binary {
		t.Errorf("a container of the pod with the same options: got %+v, %v; want %s in version 3", r, ok, live)
	}
	for _, tc := range []struct {
		name    string
		spec    *specs.Spec
		options string
	}{
		{"other options", inPod, "other"},
		// runc reads its own group annotation first: it would not group this one with the pod.
		{"runc groups it elsewhere", &specs.Spec{Annotations: map[string]string{annotationSandboxID: "sb", annotationRuncGroup: "g"}}, "opts"},
	} {
		if r, ok := groupDelegate(bundle, runcGroup(tc.spec, "c1"), pod, "sb", []byte(tc.options)); ok {
			t.Errorf("%s: routed to %s, want none", tc.name, r.Address)
		}
	}
	l.Close()
	if r, ok := groupDelegate(bundle, runcGroup(inPod, "c1"), pod, "sb", []byte("opts")); ok {
		t.Errorf("a shim that no longer listens: routed to %s, want none", r.Address)
	}
}
