package router

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
)

// serveTestRelay serves a router on a real socket, as triage-router does, and
// returns its service and socket.
func serveTestRelay(t *testing.T) (*Service, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "r.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	svc := New(nil)
	taskv2.RegisterTTRPCTaskService(srv, svc)
	r := newRelay(context.Background(), svc, srv)
	go r.serve(l)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-svc.Done()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		r.shutdown(ctx)
	}()
	t.Cleanup(func() {
		svc.mu.Lock()
		svc.finishLocked()
		svc.mu.Unlock()
		<-stopped
	})
	return svc, sock
}

// dialRouter connects to the router at sock as containerd does.
func dialRouter(t *testing.T, sock string) *ttrpc.Client {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := ttrpc.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// taskClient is a task API v2 client of the router at sock, containerd's before 2.4.
func taskClient(t *testing.T, sock string) taskv2.TTRPCTaskService {
	return taskv2.NewTTRPCTaskClient(dialRouter(t, sock))
}

func (f *fakeDelegate) Wait(ctx context.Context, r *taskv3.WaitRequest) (*taskv3.WaitResponse, error) {
	<-ctx.Done() // the container never exits
	return nil, ctx.Err()
}

// Calls that need no change reach a v3 delegate (runc 2.x serves no v2)
// over a connection of the relay's own, and each caller gets its own reply.
func TestRelayedCallsReachV3Delegate(t *testing.T) {
	fd, addr := startDelegate(t)
	_, sock := serveTestRelay(t)
	ctx := context.Background()
	clients := []taskv2.TTRPCTaskService{taskClient(t, sock), taskClient(t, sock)}
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		if _, err := clients[0].Create(ctx, &taskv2.CreateTaskRequest{ID: id, Bundle: bundleFor(t, addr)}); err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 20 {
		wg.Go(func() {
			id := ids[i%len(ids)]
			for range 20 {
				resp, err := clients[i%2].State(ctx, &taskv2.StateRequest{ID: id})
				if err != nil {
					errs <- fmt.Errorf("State %s: %w", id, err)
					return
				}
				if resp.Bundle != "delegate-saw-"+id {
					errs <- fmt.Errorf("State %s answered %q: another call's reply", id, resp.Bundle)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One connection for the task service's calls (Create), one for the relay.
	if n := fd.accepted.Load(); n != 2 {
		t.Errorf("delegate accepted %d connections, want 2", n)
	}
}

// A call for a container the router does not serve gets the router's own
// answer, not the delegate's.
func TestRelayUnknownContainer(t *testing.T) {
	_, _ = startDelegate(t)
	_, sock := serveTestRelay(t)
	c := taskClient(t, sock)
	_, err := c.State(context.Background(), &taskv2.StateRequest{ID: "nope"})
	if !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Fatalf("State of an unknown container: %v, want NotFound", err)
	}
}

// A delegate that dies under a relayed call fails the call, as a ttrpc
// client does, instead of leaving containerd waiting.
func TestRelayedCallFailsWhenDelegateDies(t *testing.T) {
	fd, addr := startDelegate(t)
	_, sock := serveTestRelay(t)
	c := taskClient(t, sock)
	ctx := context.Background()
	if _, err := c.Create(ctx, &taskv2.CreateTaskRequest{ID: "a", Bundle: bundleFor(t, addr)}); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := c.Wait(ctx, &taskv2.WaitRequest{ID: "a"})
		waited <- err
	}()
	time.Sleep(100 * time.Millisecond)
	fd.die()
	select {
	case err := <-waited:
		if !errdefs.IsUnavailable(errgrpc.ToNative(err)) {
			t.Fatalf("Wait when the delegate died: %v, want Unavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still pending after the delegate died")
	}
}

// The last container's Shutdown is answered before the router closes
// containerd's connection.
func TestRelayAnswersLastShutdown(t *testing.T) {
	fd, addr := startDelegate(t)
	svc, sock := serveTestRelay(t)
	c := taskClient(t, sock)
	ctx := context.Background()
	if _, err := c.Create(ctx, &taskv2.CreateTaskRequest{ID: "a", Bundle: bundleFor(t, addr)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(ctx, &taskv2.StateRequest{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "a"}); err != nil {
		t.Fatalf("Shutdown of the last container: %v", err)
	}
	if n := fd.shutdowns.Load(); n != 1 {
		t.Errorf("delegate saw %d Shutdowns, want 1", n)
	}
	select {
	case <-svc.Done():
	case <-time.After(time.Second):
		t.Fatal("router did not end after its last container was shut down")
	}
}

// containerd 2.4+ calls the task API v3 once start reported it: relayed calls and the task
// service's own both answer it.
func TestRelayServesTaskV3(t *testing.T) {
	_, addr := startDelegate(t)
	_, sock := serveTestRelay(t)
	c := taskv3.NewTTRPCTaskClient(dialRouter(t, sock))
	ctx := context.Background()
	if _, err := c.Create(ctx, &taskv3.CreateTaskRequest{ID: "a", Bundle: bundleFor(t, addr)}); err != nil {
		t.Fatalf("Create over v3: %v", err)
	}
	resp, err := c.State(ctx, &taskv3.StateRequest{ID: "a"})
	if err != nil || resp.Bundle != "delegate-saw-a" {
		t.Fatalf("State over v3: %v, %v", resp, err)
	}
	if _, err := c.Connect(ctx, &taskv3.ConnectRequest{ID: "a"}); err != nil {
		t.Fatalf("Connect over v3: %v", err)
	}
}
