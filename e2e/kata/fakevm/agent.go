//go:build kata_fakevm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/containerd/ttrpc"
	pb "github.com/kata-containers/kata-containers/src/runtime/virtcontainers/pkg/agent/protocols/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// guestShared is where the shim tells the agent a container's rootfs is, in the guest.
const guestShared = "/run/kata-containers/shared/containers/"

// agent is a minimal kata-agent: the calls the shim makes for create, start, exec, I/O,
// wait, kill and delete. The rest answer Unimplemented (see recoverUnimplemented).
type agent struct {
	pb.AgentServiceService // nil: methods not overridden panic, turned into Unimplemented
	sid                    string
	peer                   *int32 // pid of the connected shim (SO_PEERCRED); its mount ns holds the rootfs
	mu                     sync.Mutex
	procs                  map[string]*proc    // guarded by mu; key cid/execid ("" for the init)
	specs                  map[string]*pb.Spec // guarded by mu; by container id
}

func newAgent(sid string, peer *int32) *agent {
	return &agent{sid: sid, peer: peer, procs: map[string]*proc{}, specs: map[string]*pb.Spec{}}
}

func key(c, e string) string { return c + "/" + e }

// hostRootfs maps the guest path of a rootfs to the host folder the shim shares it from.
// The Kata shim unshares its own mount namespace, so it is reached through /proc/<pid>/root.
func (a *agent) hostRootfs(guest string) string {
	rel := strings.TrimPrefix(guest, guestShared)
	return filepath.Join(fmt.Sprintf("/proc/%d/root", atomic.LoadInt32(a.peer)),
		"run/kata-containers/shared/sandboxes", a.sid, "shared", rel)
}

func (a *agent) get(c, e string) (*proc, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.procs[key(c, e)]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "process %s/%s not found", c, e)
	}
	return p, nil
}

func (a *agent) CreateSandbox(ctx context.Context, r *pb.CreateSandboxRequest) (*emptypb.Empty, error) {
	log.Printf("agent: CreateSandbox sid=%s hostname=%s", r.SandboxId, r.Hostname)
	return &emptypb.Empty{}, nil
}

func (a *agent) DestroySandbox(ctx context.Context, r *pb.DestroySandboxRequest) (*emptypb.Empty, error) {
	log.Printf("agent: DestroySandbox sid=%s", a.sid)
	return &emptypb.Empty{}, nil
}

func (a *agent) GetGuestDetails(ctx context.Context, r *pb.GuestDetailsRequest) (*pb.GuestDetailsResponse, error) {
	return &pb.GuestDetailsResponse{MemBlockSizeBytes: 128 << 20, AgentDetails: &pb.AgentDetails{Version: "fakevm-0.1"}}, nil
}

func (a *agent) SetGuestDateTime(ctx context.Context, r *pb.SetGuestDateTimeRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (a *agent) CreateContainer(ctx context.Context, r *pb.CreateContainerRequest) (*emptypb.Empty, error) {
	root := a.hostRootfs(r.OCI.Root.Path)
	log.Printf("agent: CreateContainer cid=%s exec=%s hostRoot=%s args=%v", r.ContainerId, r.ExecId, root, r.OCI.Process.Args)
	pr, err := newProc(root, r.OCI.Process)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.procs[key(r.ContainerId, r.ExecId)] = pr
	a.procs[key(r.ContainerId, "")] = pr
	a.specs[r.ContainerId] = r.OCI
	a.mu.Unlock()
	return &emptypb.Empty{}, nil
}

func (a *agent) StartContainer(ctx context.Context, r *pb.StartContainerRequest) (*emptypb.Empty, error) {
	p, err := a.get(r.ContainerId, "")
	if err != nil {
		return nil, err
	}
	log.Printf("agent: StartContainer cid=%s", r.ContainerId)
	return &emptypb.Empty{}, p.start()
}

func (a *agent) ExecProcess(ctx context.Context, r *pb.ExecProcessRequest) (*emptypb.Empty, error) {
	a.mu.Lock()
	spec := a.specs[r.ContainerId]
	a.mu.Unlock()
	if spec == nil {
		return nil, status.Errorf(codes.NotFound, "container %s", r.ContainerId)
	}
	pr, err := newProc(a.hostRootfs(spec.Root.Path), r.Process)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.procs[key(r.ContainerId, r.ExecId)] = pr
	a.mu.Unlock()
	log.Printf("agent: ExecProcess cid=%s exec=%s args=%v", r.ContainerId, r.ExecId, r.Process.Args)
	return &emptypb.Empty{}, pr.start()
}

// WaitProcess blocks until the process exits; it holds no lock while it waits.
func (a *agent) WaitProcess(ctx context.Context, r *pb.WaitProcessRequest) (*pb.WaitProcessResponse, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		log.Printf("agent: WaitProcess cid=%s exec=%s -> %d", r.ContainerId, r.ExecId, p.code)
		return &pb.WaitProcessResponse{Status: p.code}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *agent) ReadStdout(ctx context.Context, r *pb.ReadStreamRequest) (*pb.ReadStreamResponse, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return read(p.stdout, r.Len)
}

func (a *agent) ReadStderr(ctx context.Context, r *pb.ReadStreamRequest) (*pb.ReadStreamResponse, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return read(p.stderr, r.Len)
}

func (a *agent) WriteStdin(ctx context.Context, r *pb.WriteStreamRequest) (*pb.WriteStreamResponse, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	n, err := p.stdin.Write(r.Data)
	return &pb.WriteStreamResponse{Len: uint32(n)}, err
}

func (a *agent) CloseStdin(ctx context.Context, r *pb.CloseStdinRequest) (*emptypb.Empty, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, p.stdin.Close()
}

// SignalProcess signals the process group; an unknown process is not an error, as in
// kata-agent (the shim signals processes that may have exited).
func (a *agent) SignalProcess(ctx context.Context, r *pb.SignalProcessRequest) (*emptypb.Empty, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return &emptypb.Empty{}, nil
	}
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.Signal(r.Signal))
	}
	return &emptypb.Empty{}, nil
}

func (a *agent) RemoveContainer(ctx context.Context, r *pb.RemoveContainerRequest) (*emptypb.Empty, error) {
	// Processes stay known: the shim may still drain their output and wait for them.
	log.Printf("agent: RemoveContainer cid=%s", r.ContainerId)
	return &emptypb.Empty{}, nil
}

func (a *agent) StatsContainer(ctx context.Context, r *pb.StatsContainerRequest) (*pb.StatsContainerResponse, error) {
	return &pb.StatsContainerResponse{}, nil
}

func (a *agent) UpdateContainer(ctx context.Context, r *pb.UpdateContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (a *agent) TtyWinResize(ctx context.Context, r *pb.TtyWinResizeRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// GetOOMEvent blocks until the shim gives up: the fake never reports an OOM.
func (a *agent) GetOOMEvent(ctx context.Context, r *pb.GetOOMEventRequest) (*pb.OOMEvent, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (a *agent) OnlineCPUMem(ctx context.Context, r *pb.OnlineCPUMemRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (a *agent) ListInterfaces(ctx context.Context, r *pb.ListInterfacesRequest) (*pb.Interfaces, error) {
	return &pb.Interfaces{}, nil
}

func (a *agent) ListRoutes(ctx context.Context, r *pb.ListRoutesRequest) (*pb.Routes, error) {
	return &pb.Routes{}, nil
}

type health struct{}

func (health) Check(ctx context.Context, r *pb.CheckRequest) (*pb.HealthCheckResponse, error) {
	return &pb.HealthCheckResponse{Status: pb.HealthCheckResponse_SERVING}, nil
}

func (health) Version(ctx context.Context, r *pb.CheckRequest) (*pb.VersionCheckResponse, error) {
	return &pb.VersionCheckResponse{GrpcVersion: "fake", AgentVersion: "fakevm-0.1"}, nil
}

// recoverUnimplemented turns calls to methods the fake does not implement (nil embedded
// interface: a panic) into an Unimplemented error.
func recoverUnimplemented(ctx context.Context, u ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("agent: %s not implemented by fakevm", info.FullMethod)
			resp, err = nil, status.Errorf(codes.Unimplemented, "%s not implemented by fakevm", info.FullMethod)
		}
	}()
	return m(ctx, u)
}

// credListener records the pid of the last peer (the Kata shim) it accepted.
type credListener struct {
	net.Listener
	peer *int32
}

func (c *credListener) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
					atomic.StoreInt32(c.peer, cred.Pid)
				}
			})
		}
	}
	return conn, nil
}

// proc is one container or exec process, run on the host in a chroot.
type proc struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr io.ReadCloser
	done           chan struct{} // closed when the process has exited; code is set before
	code           int32
	closeChild     func()
}

func newProc(root string, p *pb.Process) (*proc, error) {
	if p == nil || len(p.Args) == 0 {
		return nil, errors.New("no process args")
	}
	// exec.Command would look the program up on fakevm's own PATH, outside the chroot.
	cmd := &exec.Cmd{Path: lookPath(root, p.Args[0], p.Env), Args: p.Args, Env: p.Env}
	cmd.Dir = p.Cwd
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Setpgid: true}
	// Own pipes: exec's StdoutPipe would be closed by Wait before the shim drained it.
	var ends [6]*os.File
	for i := 0; i < len(ends); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range ends[:i] {
				f.Close()
			}
			return nil, err
		}
		ends[i], ends[i+1] = r, w
	}
	inR, inW, outR, outW, errR, errW := ends[0], ends[1], ends[2], ends[3], ends[4], ends[5]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	return &proc{
		cmd: cmd, done: make(chan struct{}),
		stdin: inW, stdout: outR, stderr: errR,
		closeChild: func() { inR.Close(); outW.Close(); errW.Close() },
	}, nil
}

// lookPath resolves name on the PATH in env, inside root, as the guest's agent would. The
// result is a path in the chroot; a name not found is returned as is and fails at start.
func lookPath(root, name string, env []string) string {
	if strings.Contains(name, "/") {
		return name
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

func (pr *proc) start() error {
	err := pr.cmd.Start()
	pr.closeChild()
	if err != nil {
		pr.code = 127
		close(pr.done)
		return err
	}
	go func() {
		err := pr.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			pr.code = int32(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				pr.code = 128 + int32(ws.Signal()) // what kata-agent reports
			}
		}
		close(pr.done)
	}()
	return nil
}

func read(rd io.Reader, n uint32) (*pb.ReadStreamResponse, error) {
	if n == 0 || n > 1<<20 {
		n = 1 << 16
	}
	buf := make([]byte, n)
	k, err := rd.Read(buf)
	if k > 0 {
		return &pb.ReadStreamResponse{Data: buf[:k]}, nil
	}
	if err == nil {
		err = io.EOF
	}
	return nil, status.Error(codes.Unknown, err.Error())
}
