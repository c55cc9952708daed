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

// podHosted tells whether the pod's router hosts its runc containers. A pod keeps the
// design of its first container, so the first other member's marker tells: one that names
// a delegate shim is of a pod an earlier Triage started, which relayed runc pods to runc's
// own shim; their routers still run.
func podHosted(pod *state.Pod, bundle string) bool {
	members, err := pod.Members()
	if err != nil {
		return true
	}
	self := filepath.Base(bundle)
	for _, member := range members {
		if member == self {
			continue
		}
		if m, err := state.ReadContainer(filepath.Join(filepath.Dir(bundle), member)); err == nil {
			return m.Delegate.Address == ""
		}
	}
	return true
}

// groupDelegate finds the runc shim that serves the pod's runc group, in a
// pod an earlier Triage started and relays to runc's own shim: another
// member's, in a sibling bundle, started with the same options, and still
// reachable. runc's own start would only name that shim (its socket is
// derived from the group), so Triage names it. A container that runc would
// not group as Triage groups the pod (group, from its spec before
// hardening) is not looked up.
func groupDelegate(bundle, group string, pod *state.Pod, podID string, options []byte) (state.Delegate, bool) {
	if group != podID {
		return state.Delegate{}, false
	}
	members, err := pod.Members()
	if err != nil {
		return state.Delegate{}, false
	}
	for _, member := range members {
		m, err := state.ReadContainer(filepath.Join(filepath.Dir(bundle), member))
		if err != nil || m.Delegate.Address == "" || !bytes.Equal(m.Delegate.Options, options) {
			continue
		}
		return m.Delegate, delegate.Reachable(m.Delegate.Address)
	}
	return state.Delegate{}, false
}
