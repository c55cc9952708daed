package router

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/state"
)

const routerAddress = "unix:///run/triage/s/router"

// handedOver returns a bundle whose marker has no delegate address yet, and
// the running start of a stand-in delegate shim (a script) that answers with
// script's output, as containerd-shim-triage-v2 start hands it over.
func handedOver(t *testing.T, script string) (string, *delegate.Pending) {
	t.Helper()
	bundle := bundleFor(t, "")
	bin := filepath.Join(t.TempDir(), "containerd-shim-fake-v1")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	inv := delegate.Invocation{Binary: bin, Namespace: "ns", Address: "/run/c.sock", ID: "c1", Bundle: bundle}
	p, err := inv.Spawn(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return bundle, p
}

func TestCreateWaitsForTheHandedOverStart(t *testing.T) {
	fd, addr, _ := startDelegate(t)
	// The delegate writes its own address to ./address, then answers late.
	bundle, p := handedOver(t, `echo -n `+addr+` > address; sleep 0.2; echo '{"version":3,"address":"`+addr+`"}'`)
	s := New(nil)
	s.Adopt("c1", bundle, routerAddress, p)
	resp, err := s.Create(context.Background(), &taskv2.CreateTaskRequest{ID: "c1", Bundle: bundle})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if resp.Pid != 4242 || fd.created.Load() == nil {
		t.Fatalf("Create did not reach the delegate (pid %d)", resp.Pid)
	}
	m, err := state.ReadContainer(bundle)
	if err != nil || m.Delegate.Address != addr || m.Delegate.Version != 3 {
		t.Errorf("marker delegate = %+v, %v; want %s in version 3", m.Delegate, err, addr)
	}
	if b, _ := os.ReadFile(filepath.Join(bundle, "address")); string(b) != routerAddress {
		t.Errorf("./address = %q, want the router's %q again", b, routerAddress)
	}
}

func TestCreateReportsAFailedHandedOverStart(t *testing.T) {
	bundle, p := handedOver(t, `echo "shim: cannot create socket: permission denied" >&2; exit 1`)
	s := New(nil)
	s.Adopt("c1", bundle, routerAddress, p)
	_, err := s.Create(context.Background(), &taskv2.CreateTaskRequest{ID: "c1", Bundle: bundle})
	if err == nil || !strings.Contains(err.Error(), "cannot create socket: permission denied") {
		t.Fatalf("Create error = %v, want the delegate's own error", err)
	}
	if !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("Create error %v is not FailedPrecondition", err)
	}
	// containerd then shuts the shim down: the router ends.
	if _, err := s.Shutdown(context.Background(), &taskv2.ShutdownRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("router still running after its only container's Shutdown")
	}
}

// containerd may give up between start and Create: the delegate started for
// the container must not outlive the router.
func TestShutdownWithoutCreateStopsTheDelegate(t *testing.T) {
	fd, addr, _ := startDelegate(t)
	bundle, p := handedOver(t, `echo '{"version":3,"address":"`+addr+`"}'`)
	s := New(nil)
	s.Adopt("c1", bundle, routerAddress, p)
	if _, err := s.Shutdown(context.Background(), &taskv2.ShutdownRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if fd.shutdowns.Load() != 1 {
		t.Errorf("delegate got %d Shutdown calls, want 1", fd.shutdowns.Load())
	}
}
