package router

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/shim/front"
	"github.com/triage-runtime/triage/shim/state"
)

// fakeDelegate is a test double of a runc 2.x shim: it serves only the v3
// task service, on a real socket. Methods the router must not need are left
// nil and would fail the call.
type fakeDelegate struct {
	taskv3.TTRPCTaskService
	created  atomic.Value // *taskv3.CreateTaskRequest
	execed   atomic.Value // *taskv3.ExecProcessRequest
	order    calls
	accepted atomic.Int32
	// exitOnShutdown makes Shutdown end the delegate inside the call, as
	// gVisor's per-container shim and Kata (os.Exit) do.
	exitOnShutdown bool
	srv            *ttrpc.Server
	shutdowns      atomic.Int32
	mu             sync.Mutex
	conns          []net.Conn // guarded by mu
}

func (f *fakeDelegate) Create(_ context.Context, r *taskv3.CreateTaskRequest) (*taskv3.CreateTaskResponse, error) {
	f.created.Store(r)
	return &taskv3.CreateTaskResponse{Pid: 4242}, nil
}

func (f *fakeDelegate) State(_ context.Context, r *taskv3.StateRequest) (*taskv3.StateResponse, error) {
	return &taskv3.StateResponse{ID: r.ID, Pid: 4242, Bundle: "delegate-saw-" + r.ID}, nil
}

func (f *fakeDelegate) Connect(_ context.Context, r *taskv3.ConnectRequest) (*taskv3.ConnectResponse, error) {
	return &taskv3.ConnectResponse{ShimPid: 1, TaskPid: 4242, Version: "fake"}, nil
}

func (f *fakeDelegate) Shutdown(context.Context, *taskv3.ShutdownRequest) (*emptypb.Empty, error) {
	f.shutdowns.Add(1)
	if f.exitOnShutdown {
		f.srv.Close()
		time.Sleep(50 * time.Millisecond) // the router sees the connection end first
	}
	return &emptypb.Empty{}, nil
}

// recordingListener records a fake delegate's accepted connections and counts them.
type recordingListener struct {
	net.Listener
	fd *fakeDelegate
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.fd.accepted.Add(1)
		l.fd.mu.Lock()
		l.fd.conns = append(l.fd.conns, c)
		l.fd.mu.Unlock()
	}
	return c, err
}

// die ends the delegate as its process's exit does: every connection closes at
// once. ttrpc's Server.Close alone keeps a connection open while a call on it
// runs, and the fake's Wait runs until its connection ends.
func (f *fakeDelegate) die() {
	f.srv.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// startDelegate serves a fake v3 delegate and returns it with its address.
func startDelegate(t *testing.T) (*fakeDelegate, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "trt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeDelegate{}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	fd.srv = srv
	taskv3.RegisterTTRPCTaskService(srv, fd)
	go srv.Serve(context.Background(), recordingListener{l, fd})
	t.Cleanup(fd.die)
	return fd, "unix://" + sock
}

// bundleFor writes a bundle whose marker routes to the delegate at addr.
func bundleFor(t *testing.T, addr string) string {
	t.Helper()
	opts, err := proto.Marshal(&runcoptions.Options{BinaryName: "runc", SystemdCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	b := t.TempDir()
	m := state.Container{Pod: "pod", Delegate: state.Delegate{
		Runtime: "io.containerd.runc.v2", Address: addr, Version: 3,
		Options: opts, OptionsType: "containerd.runc.v1.Options",
	}}
	if err := state.WriteContainer(b, m); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateForwardsToV3DelegateWithTriageOptions(t *testing.T) {
	fd, addr := startDelegate(t)
	s := New(nil)
	ctx := context.Background()
	// containerd sends Triage's own runtime options; the delegate must never see them.
	foreign := &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{0x12, 0x03, 'a', 'b', 'c'}}
	resp, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "c1", Bundle: bundleFor(t, addr), Options: foreign})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if resp.Pid != 4242 {
		t.Errorf("Create pid = %d, want the delegate's 4242", resp.Pid)
	}
	got := fd.created.Load().(*taskv3.CreateTaskRequest)
	var o runcoptions.Options
	if err := got.Options.UnmarshalTo(&o); err != nil {
		t.Fatalf("delegate got options %q: %v", got.Options.GetTypeUrl(), err)
	}
	if !o.SystemdCgroup || o.BinaryName != "runc" {
		t.Errorf("delegate got options %+v, want the tier's runc options", &o)
	}
	st, err := s.State(ctx, &taskv2.StateRequest{ID: "c1"})
	if err != nil || st.Bundle != "delegate-saw-c1" {
		t.Fatalf("State = %+v, %v; want the delegate's reply", st, err)
	}
}

func TestCreateWithoutMarkerFails(t *testing.T) {
	s := New(nil)
	_, err := s.Create(context.Background(), &taskv2.CreateTaskRequest{ID: "c1", Bundle: t.TempDir()})
	if !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Fatalf("Create without marker: %v, want FailedPrecondition", err)
	}
}

func TestUnknownContainer(t *testing.T) {
	s := New(nil)
	ctx := context.Background()
	if _, err := s.State(ctx, &taskv2.StateRequest{ID: "nope"}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("State(unknown) error = %v, want NotFound", err)
	}
	// containerd's reload treats a Connect error as a dead shim: answer pid 0.
	c, err := s.Connect(ctx, &taskv2.ConnectRequest{ID: "nope"})
	if err != nil || c.TaskPid != 0 || c.ShimPid != uint32(os.Getpid()) {
		t.Errorf("Connect(unknown) = %+v, %v; want task pid 0, router pid, no error", c, err)
	}
}

func TestConnectReportsDelegateTaskPid(t *testing.T) {
	_, addr := startDelegate(t)
	s := New(nil)
	ctx := context.Background()
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "c1", Bundle: bundleFor(t, addr)}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Connect(ctx, &taskv2.ConnectRequest{ID: "c1"})
	if err != nil || c.TaskPid != 4242 || c.ShimPid != uint32(os.Getpid()) {
		t.Fatalf("Connect = %+v, %v; want task pid 4242 and the router's pid", c, err)
	}
}

func TestContainersShareOneConnectionPerDelegate(t *testing.T) {
	fd, addr := startDelegate(t)
	s := New(nil)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: id, Bundle: bundleFor(t, addr)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := fd.accepted.Load(); n != 1 {
		t.Fatalf("delegate accepted %d connections, want 1 shared by the pod", n)
	}
}

func TestShutdownOfLastContainerEndsRouter(t *testing.T) {
	_, addr := startDelegate(t)
	s := New(nil)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: id, Bundle: bundleFor(t, addr)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
		t.Fatal("router ended while container b is still served")
	default:
	}
	if _, err := s.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(time.Second):
		t.Fatal("router did not end after its last container was shut down")
	}
}

func TestDelegateDeathEndsRouter(t *testing.T) {
	fd, addr := startDelegate(t)
	s := New(nil)
	if _, err := s.Create(context.Background(), &taskv2.CreateTaskRequest{ID: "a", Bundle: bundleFor(t, addr)}); err != nil {
		t.Fatal(err)
	}
	fd.die()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("router kept running after its delegate died under a live container")
	}
}

// A delegate that serves one container exits inside its Shutdown (gVisor without grouping):
// that is no crash, and the router must keep serving the pod's other containers.
func TestDelegateExitingOnShutdownIsNoCrash(t *testing.T) {
	fa, addrA := startDelegate(t)
	fa.exitOnShutdown = true
	_, addrB := startDelegate(t)
	s := New(nil)
	ctx := context.Background()
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "a", Bundle: bundleFor(t, addrA)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "b", Bundle: bundleFor(t, addrB)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-s.Done():
		t.Fatal("router ended when a delegate exited after its container's Shutdown")
	default:
	}
	if _, err := s.State(ctx, &taskv2.StateRequest{ID: "b"}); err != nil {
		t.Fatalf("container b unreachable after a's delegate exited: %v", err)
	}
}

// bundleWithSpec is bundleFor with a container spec and exec rules.
func bundleWithSpec(t *testing.T, addr string, spec *specs.Spec, rules execrule.Rules) string {
	t.Helper()
	b := bundleFor(t, addr)
	m, err := state.ReadContainer(b)
	if err != nil {
		t.Fatal(err)
	}
	m.Exec = rules
	if err := state.WriteContainer(b, m); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(b, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fakeDelegate) Exec(_ context.Context, r *taskv3.ExecProcessRequest) (*emptypb.Empty, error) {
	f.execed.Store(r)
	return &emptypb.Empty{}, nil
}

func (f *fakeDelegate) Update(context.Context, *taskv3.UpdateTaskRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func TestExecIsHardened(t *testing.T) {
	fd, addr := startDelegate(t)
	baseline := []string{"CAP_CHOWN", "CAP_KILL"}
	container := &specs.Spec{Process: &specs.Process{
		NoNewPrivileges: true,
		Capabilities:    &specs.LinuxCapabilities{Bounding: baseline, Effective: baseline, Permitted: baseline},
	}}
	rules := execrule.Rules{Tier: "trusted", AllowedCapabilities: []string{"CAP_CHOWN", "CAP_KILL", "CAP_SETUID"}}
	s := New(nil)
	ctx := context.Background()
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "c", Bundle: bundleWithSpec(t, addr, container, rules)}); err != nil {
		t.Fatal(err)
	}
	execReq := func(p *specs.Process) *taskv2.ExecProcessRequest {
		b, _ := json.Marshal(p)
		return &taskv2.ExecProcessRequest{ID: "c", ExecID: "e", Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: b}}
	}

	// `exec --privileged` (nerdctl) asks for every capability: refused, never forwarded.
	all := []string{"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"}
	_, err := s.Exec(ctx, execReq(&specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: all, Effective: all}}))
	if !errdefs.IsPermissionDenied(errgrpc.ToNative(err)) || !strings.Contains(err.Error(), "CAP_SYS_ADMIN") {
		t.Fatalf("privileged exec: %v, want PermissionDenied naming CAP_SYS_ADMIN", err)
	}
	if fd.execed.Load() != nil {
		t.Fatal("a refused exec reached the delegate")
	}

	// An allowed exec is narrowed to the container's bounding set and keeps noNewPrivileges.
	asks := []string{"CAP_CHOWN", "CAP_SETUID"}
	if _, err := s.Exec(ctx, execReq(&specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: asks, Effective: asks}})); err != nil {
		t.Fatalf("exec: %v", err)
	}
	var got specs.Process
	if err := json.Unmarshal(fd.execed.Load().(*taskv3.ExecProcessRequest).Spec.Value, &got); err != nil {
		t.Fatal(err)
	}
	if !got.NoNewPrivileges || strings.Join(got.Capabilities.Effective, ",") != "CAP_CHOWN" {
		t.Fatalf("delegate got exec process %+v caps %v; want noNewPrivileges and only CAP_CHOWN", got, got.Capabilities.Effective)
	}
}

func TestUpdateCannotAddDevices(t *testing.T) {
	_, addr := startDelegate(t)
	s := New(nil)
	ctx := context.Background()
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "c", Bundle: bundleWithSpec(t, addr, &specs.Spec{Process: &specs.Process{}}, execrule.Rules{Tier: "trusted"})}); err != nil {
		t.Fatal(err)
	}
	res := func(r *specs.LinuxResources) *taskv2.UpdateTaskRequest {
		b, _ := json.Marshal(r)
		return &taskv2.UpdateTaskRequest{ID: "c", Resources: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", Value: b}}
	}
	limit := int64(100)
	if _, err := s.Update(ctx, res(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}})); err != nil {
		t.Fatalf("update of a limit: %v", err)
	}
	_, err := s.Update(ctx, res(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}))
	if !errdefs.IsPermissionDenied(errgrpc.ToNative(err)) {
		t.Fatalf("update allowing every device: %v, want PermissionDenied", err)
	}
}

func (f *fakeDelegate) Start(_ context.Context, r *taskv3.StartRequest) (*taskv3.StartResponse, error) {
	f.order.Add("start " + r.ExecID)
	return &taskv3.StartResponse{Pid: 1}, nil
}

func (f *fakeDelegate) CloseIO(_ context.Context, r *taskv3.CloseIORequest) (*emptypb.Empty, error) {
	f.order.Add("closeio " + r.ExecID)
	return &emptypb.Empty{}, nil
}

// calls records the order in which the fake delegate saw calls.
type calls struct {
	mu sync.Mutex
	s  []string
}

func (c *calls) Add(s string) { c.mu.Lock(); c.s = append(c.s, s); c.mu.Unlock() }
func (c *calls) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.s, ", ")
}

// A CloseIO sent before Start reaches a Kata delegate only after Start: the other order
// deadlocks Kata's shim. The gate holds for calls to the Service and through the relay.
func TestKataCloseIOWaitsForStart(t *testing.T) {
	for _, relayed := range []bool{false, true} {
		t.Run(fmt.Sprintf("relay=%v", relayed), func(t *testing.T) {
			fd, addr := startDelegate(t)
			b := bundleWithSpec(t, addr, &specs.Spec{Process: &specs.Process{}}, execrule.Rules{Tier: "isolated"})
			m, _ := state.ReadContainer(b)
			m.Delegate.Runtime = "io.containerd.kata.v2"
			if err := state.WriteContainer(b, m); err != nil {
				t.Fatal(err)
			}
			var c taskv2.TTRPCTaskService = New(nil)
			if relayed {
				_, sock := serveTestRelay(t)
				c = taskClient(t, sock)
			}
			ctx := context.Background()
			if _, err := c.Create(ctx, &taskv2.CreateTaskRequest{ID: "c", Bundle: b}); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			go func() {
				_, err := c.CloseIO(ctx, &taskv2.CloseIORequest{ID: "c", Stdin: true})
				closed <- err
			}()
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Start(ctx, &taskv2.StartRequest{ID: "c"}); err != nil {
				t.Fatal(err)
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			if got := fd.order.String(); got != "start , closeio " {
				t.Fatalf("the Kata delegate saw %q, want Start before CloseIO", got)
			}
		})
	}
}

// A container without a marker joined its pod without a `start` (task API v3): Create has
// it started first, and creates it only if that succeeds.
func TestCreateJoinsContainerWithoutStart(t *testing.T) {
	fd, addr := startDelegate(t)
	ctx := context.Background()
	s := New(nil)
	var joined []string
	s.join = func(id, bundle string, _ *anypb.Any) error {
		joined = append(joined, id)
		if id == "refused" {
			return startError(front.ExitDenied, `containerd-shim-triage-v2 start: denied by rule "deny-privileged"`)
		}
		b := bundleFor(t, addr)
		marker, err := os.ReadFile(filepath.Join(b, "triage.json"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(bundle, "triage.json"), marker, 0o600)
	}
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "joins", Bundle: t.TempDir()}); err != nil {
		t.Fatalf("Create of a joining container: %v", err)
	}
	if got := fd.created.Load().(*taskv3.CreateTaskRequest).ID; got != "joins" {
		t.Errorf("delegate created %q, want joins", got)
	}
	_, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "refused", Bundle: t.TempDir()})
	if !errdefs.IsPermissionDenied(errgrpc.ToNative(err)) || !strings.Contains(err.Error(), "deny-privileged") {
		t.Errorf("Create of a refused container: %v, want PermissionDenied naming the rule", err)
	}
	if _, err := s.Create(ctx, &taskv2.CreateTaskRequest{ID: "started", Bundle: bundleFor(t, addr)}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(joined, []string{"joins", "refused"}) {
		t.Errorf("joined %v, want only the containers without a marker", joined)
	}
}
