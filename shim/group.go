package shim

import (
	"bytes"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/state"
)

// runcGroupAnnotations are the annotations runc's shim groups containers by,
// in the order it reads them (containerd's cmd/containerd-shim-runc-v2).
var runcGroupAnnotations = []string{annotationRuncGroup, annotationSandboxID}

// runcGroup is the key runc's shim groups the container under: the first of
// its group annotations present, else the container itself.
func runcGroup(spec *specs.Spec, id string) string {
	for _, k := range runcGroupAnnotations {
		if v, ok := spec.Annotations[k]; ok {
			return v
		}
	}
	return id
}

// groupDelegate finds the runc shim that already serves the container's
// group: another member of the pod, in a sibling bundle, handed to the same
// shim binary with the same options, and still reachable. runc's own start
// would only name that shim (its socket is derived from the group), so
// Triage names it without running it. Containers that runc would not group
// as Triage groups the pod are not looked up. spec is the spec before
// hardening: the caller makes sure runc's group annotation, which hardening
// strips, is absent.
func groupDelegate(bundle string, spec *specs.Spec, id string, pod *state.Pod, podID, binary string, options []byte) (delegate.Reply, bool) {
	if runcGroup(spec, id) != podID {
		return delegate.Reply{}, false
	}
	members, err := pod.Members()
	if err != nil {
		return delegate.Reply{}, false
	}
	for _, member := range members {
		m, err := state.ReadContainer(filepath.Join(filepath.Dir(bundle), member))
		if err != nil || m.Delegate.Address == "" || m.Delegate.Binary != binary || !bytes.Equal(m.Delegate.Options, options) {
			continue
		}
		if !delegate.Reachable(m.Delegate.Address) {
			return delegate.Reply{}, false
		}
		return delegate.Reply{Address: m.Delegate.Address, Version: m.Delegate.Version, Protocol: "ttrpc"}, true
	}
	return delegate.Reply{}, false
}
