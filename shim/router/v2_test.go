package router

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// stateService is a task API v3 service that answers State and Shutdown.
type stateService struct {
	taskv3.TTRPCTaskService
}

func (stateService) State(_ context.Context, r *taskv3.StateRequest) (*taskv3.StateResponse, error) {
	return &taskv3.StateResponse{ID: r.ID, Pid: 42, ExitStatus: 7, Bundle: "/b/" + r.ID}, nil
}

func (stateService) Shutdown(context.Context, *taskv3.ShutdownRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// containerd 1.x calls task API v2: a v3 service registered with registerTaskV2 answers it,
// and v3 clients as well.
func TestTaskV2CallsReachTheV3Service(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	taskv3.RegisterTTRPCTaskService(srv, stateService{})
	registerTaskV2(srv, stateService{})
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })

	ctx := context.Background()
	r, err := taskClient(t, sock).State(ctx, &taskv2.StateRequest{ID: "c1"})
	if err != nil {
		t.Fatalf("v2 State: %v", err)
	}
	if r.ID != "c1" || r.Pid != 42 || r.ExitStatus != 7 || r.Bundle != "/b/c1" {
		t.Errorf("v2 State = %+v, want the v3 service's reply", r)
	}
	if _, err := taskClient(t, sock).Shutdown(ctx, &taskv2.ShutdownRequest{ID: "c1"}); err != nil {
		t.Errorf("v2 Shutdown: %v", err)
	}
	r3, err := taskv3.NewTTRPCTaskClient(dialRouter(t, sock)).State(ctx, &taskv3.StateRequest{ID: "c2"})
	if err != nil || r3.Pid != 42 {
		t.Errorf("v3 State = %+v, %v", r3, err)
	}
}
