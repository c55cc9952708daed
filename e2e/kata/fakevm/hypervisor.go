//go:build kata_fakevm

package main

import (
	"context"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/ttrpc"
	hvpb "github.com/kata-containers/kata-containers/src/runtime/protocols/hypervisor"
	pb "github.com/kata-containers/kata-containers/src/runtime/virtcontainers/pkg/agent/protocols/grpc"
)

// hypervisor is the remote hypervisor: a "VM" is an agent socket in dir.
type hypervisor struct {
	dir string
	mu  sync.Mutex
	ls  map[string]net.Listener // guarded by mu; agent listener per sandbox id
}

var _ hvpb.HypervisorService = (*hypervisor)(nil)

func newHypervisor(dir string) *hypervisor {
	return &hypervisor{dir: dir, ls: map[string]net.Listener{}}
}

func (h *hypervisor) CreateVM(ctx context.Context, r *hvpb.CreateVMRequest) (*hvpb.CreateVMResponse, error) {
	p := filepath.Join(h.dir, "agent-"+r.Id+".sock")
	os.Remove(p)
	l, err := net.Listen("unix", p)
	if err != nil {
		return nil, err
	}
	s, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(recoverUnimplemented))
	if err != nil {
		l.Close()
		return nil, err
	}
	peer := new(int32)
	pb.RegisterAgentServiceService(s, newAgent(r.Id, peer))
	pb.RegisterHealthService(s, health{})
	go s.Serve(context.Background(), &credListener{Listener: l, peer: peer})
	h.mu.Lock()
	h.ls[r.Id] = l
	h.mu.Unlock()
	log.Printf("hv: CreateVM id=%s -> agent socket %s", r.Id, p)
	return &hvpb.CreateVMResponse{AgentSocketPath: p}, nil
}

func (h *hypervisor) StartVM(ctx context.Context, r *hvpb.StartVMRequest) (*hvpb.StartVMResponse, error) {
	log.Printf("hv: StartVM id=%s", r.Id)
	return &hvpb.StartVMResponse{}, nil
}

// StopVM closes the sandbox's agent listener and removes its socket file.
func (h *hypervisor) StopVM(ctx context.Context, r *hvpb.StopVMRequest) (*hvpb.StopVMResponse, error) {
	log.Printf("hv: StopVM id=%s", r.Id)
	h.mu.Lock()
	if l := h.ls[r.Id]; l != nil {
		l.Close() // a closed unix listener unlinks its socket file
		delete(h.ls, r.Id)
	}
	h.mu.Unlock()
	return &hvpb.StopVMResponse{}, nil
}

func (h *hypervisor) Version(ctx context.Context, r *hvpb.VersionRequest) (*hvpb.VersionResponse, error) {
	return &hvpb.VersionResponse{Version: "fakevm-0.1"}, nil
}
