package router

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"

	"github.com/triage-runtime/triage/shim/state"
)

// podRouter is a router service for pod "pod" of a containerd at a made-up
// address, with its socket bound and its bundles in one folder, as start
// leaves them.
type podRouter struct {
	*Service
	address, sock, bundles string
}

func newPodRouter(t *testing.T) *podRouter {
	t.Helper()
	dir := t.TempDir()
	p := &podRouter{Service: New(nil), address: filepath.Join(dir, "containerd.sock"), sock: filepath.Join(dir, "r.sock"), bundles: filepath.Join(dir, "bundles")}
	t.Cleanup(func() { os.RemoveAll(state.ContainerdDir(p.address)) })
	l, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p.pod = &podGuard{address: p.address, namespace: "ns", id: "pod", sock: newSocketFile(p.sock)}
	return p
}

// start does what start does for container id routed to the delegate at
// addr: the bundle's marker, then the pod member, under the pod lock.
func (p *podRouter) start(t *testing.T, id, addr string) string {
	t.Helper()
	bundle := filepath.Join(p.bundles, id)
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := state.WriteContainer(bundle, state.Container{Pod: "pod", Delegate: state.Delegate{Runtime: "io.containerd.runc.v2", Address: addr, Version: 3}}); err != nil {
		t.Fatal(err)
	}
	pod, err := state.LockPod(p.address, "ns", "pod")
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Unlock()
	if err := pod.SetDecision(map[string]string{"tier": "trusted"}); err != nil {
		t.Fatal(err)
	}
	if err := pod.AddMember(id); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// delete is the `delete` containerd runs after a container's Shutdown.
func (p *podRouter) delete(t *testing.T, id string) {
	t.Helper()
	pod, err := state.LockPod(p.address, "ns", "pod")
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Unlock()
	if _, err := pod.RemoveMember(id); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(p.bundles, id)); err != nil {
		t.Fatal(err)
	}
}

func (p *podRouter) mustRun(t *testing.T, id, addr string) {
	t.Helper()
	if _, err := p.Create(context.Background(), &taskv2.CreateTaskRequest{ID: id, Bundle: p.start(t, id, addr)}); err != nil {
		t.Fatal(err)
	}
}

func (p *podRouter) shutdown(t *testing.T, id string) {
	t.Helper()
	if _, err := p.Shutdown(context.Background(), &taskv2.ShutdownRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
}

func (p *podRouter) ended() bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// A member that start routed to the router and to its delegate while the
// group's last container was leaving keeps both: the router serves it, and
// the delegate gets no Shutdown until the member's own.
func TestPendingMemberKeepsRouterAndDelegate(t *testing.T) {
	fd, addr := startDelegate(t)
	fd.exitOnShutdown = true
	p := newPodRouter(t)
	p.mustRun(t, "a", addr)
	bundle := p.start(t, "b", addr) // b's start, before a's Shutdown
	p.shutdown(t, "a")
	if state.HasMember(p.address, "ns", "pod", "a") {
		t.Fatal("a is still a member of the pod after its Shutdown")
	}
	if p.ended() {
		t.Fatal("router ended with member b still to be created")
	}
	if n := fd.shutdowns.Load(); n != 0 {
		t.Fatalf("delegate got %d Shutdowns while member b was routed to it, want 0", n)
	}
	if _, err := os.Stat(p.sock); err != nil {
		t.Fatalf("router socket gone with member b still to come: %v", err)
	}
	if _, err := p.Create(context.Background(), &taskv2.CreateTaskRequest{ID: "b", Bundle: bundle}); err != nil {
		t.Fatalf("create b: %v", err)
	}
	p.shutdown(t, "b")
	if !p.ended() {
		t.Fatal("router did not end with its last container")
	}
	if n := fd.shutdowns.Load(); n != 1 {
		t.Fatalf("delegate got %d Shutdowns, want 1 (b's)", n)
	}
	if _, err := os.Stat(p.sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("router left its socket: %v", err)
	}
	// The pod's folder goes once the delegate has exited.
	for deadline := time.Now().Add(delegateExitWait + time.Second); state.PodExists(p.address, "ns", "pod"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("router left the pod's state folder after its last container")
		}
	}
}

// A member whose Create never comes (its start failed late, and containerd
// ran its `delete`) does not keep the router, or the delegate held for it.
func TestRouterLeavesOncePendingMemberIsGone(t *testing.T) {
	fd, addr := startDelegate(t)
	p := newPodRouter(t)
	p.mustRun(t, "a", addr)
	p.start(t, "b", addr)
	p.shutdown(t, "a")
	if p.ended() {
		t.Fatal("router ended with member b still to be created")
	}
	p.delete(t, "b")
	select {
	case <-p.Done():
	case <-time.After(pendingRecheck + 2*time.Second):
		t.Fatal("router kept waiting for a member that is gone")
	}
	if n := fd.shutdowns.Load(); n != 1 {
		t.Fatalf("delegate got %d Shutdowns, want the one held back for b", n)
	}
}

// A router whose first Create never comes (containerd was killed between the start and
// it, and forgot the task) leaves once the member is gone, as after a last Shutdown; one
// whose Create comes stays.
func TestRouterWithoutItsFirstCreateLeaves(t *testing.T) {
	_, addr := startDelegate(t)
	lost := newPodRouter(t)
	lost.start(t, "a", addr)
	lost.awaitFirst(context.Background())
	kept := newPodRouter(t)
	kept.awaitFirst(context.Background())
	kept.mustRun(t, "b", addr)
	lost.delete(t, "a")
	select {
	case <-lost.Done():
	case <-time.After(pendingRecheck + 2*time.Second):
		t.Fatal("a router whose first Create never came still serves")
	}
	if _, err := os.Stat(lost.sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the router that left kept its socket: %v", err)
	}
	time.Sleep(pendingRecheck + time.Second)
	if kept.ended() {
		t.Fatal("a router serving its first container left")
	}
}

// containerd names containers as the user does: a container started again
// under the id of one shut down here is a new member.
func TestReusedIDIsPendingAgain(t *testing.T) {
	_, addr := startDelegate(t)
	p := newPodRouter(t)
	p.mustRun(t, "a", addr)
	p.mustRun(t, "b", addr)
	p.shutdown(t, "b")
	p.delete(t, "b")
	p.start(t, "b", addr) // b again
	p.shutdown(t, "a")
	if p.ended() {
		t.Fatal("router ended with the new b still to be created")
	}
}

// A container shut down here is no pending member, though its `delete` has
// not run yet: the router ends with its last container.
func TestShutDownMemberIsNotPending(t *testing.T) {
	_, addr := startDelegate(t)
	p := newPodRouter(t)
	p.mustRun(t, "a", addr)
	p.mustRun(t, "b", addr)
	p.shutdown(t, "a")
	p.shutdown(t, "b")
	if !p.ended() {
		t.Fatal("router waits for containers it shut down itself")
	}
}
