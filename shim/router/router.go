// Package router is the task service containerd talks to: it forwards every
// task API call to the delegate shim that owns the container, with the
// caller's context (namespace metadata and deadline ride along).
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/state"
)

// Service forwards the task API to delegates. It is done when the last
// container was shut down, or when a delegate died under live containers
// (containerd then runs `delete` for each, which reports their exits).
type Service struct {
	pid  uint32
	done chan struct{}
	// onDelegateExit runs after any delegate connection ends.
	onDelegateExit func()
	// join, if set, runs `start` for a container Create finds without
	// one (see joiner).
	join func(id, bundle string, options *anypb.Any) error
	// pod, if set, is the pod served, whose lock orders the router's
	// leaving with start (see leave.go).
	pod *podGuard
	// unlocking counts the pod locks held until a delegate exits.
	unlocking sync.WaitGroup

	mu sync.Mutex
	// containers maps a container id to its route; guarded by mu.
	containers map[string]*entry
	// conns maps a delegate address to its shared connection; guarded by mu.
	conns map[string]*conn
	// all lists every connection dialled, open or closed; guarded by mu.
	all []*conn
	// bundles is the folder of the pod's bundles, known from the first
	// Create; guarded by mu.
	bundles string
	// awaiting is set while awaitPending runs; guarded by mu.
	awaiting bool
	// closed is set once done is closed; guarded by mu.
	closed bool
}

// conn is one delegate connection, shared by every container it serves
// (runc and Kata serve a whole pod from one address).
type conn struct {
	*delegate.Client
	address string
	version int
	// closed is closed when the connection has ended.
	closed chan struct{}
	// refs counts containers routed to this connection; guarded by Service.mu.
	refs int
	// heldShutdown is the last Shutdown, not sent while a pending member
	// was routed here (see leave.go); guarded by Service.mu.
	heldShutdown *taskv2.ShutdownRequest

	wireMu sync.Mutex
	// wire carries the relayed calls (see relay), dialled on first use;
	// guarded by wireMu.
	wire *wire
}

// entry is where one container's calls go.
type entry struct {
	*conn
	bundle string
	// exec are the rules the container's execs follow.
	exec execrule.Rules
	// started gates CloseIO until Start (Kata only; nil otherwise).
	started *startGate
}

var _ taskv2.TTRPCTaskService = (*Service)(nil)

// New returns an empty router service. onDelegateExit, if not nil, runs
// each time a delegate connection ends.
func New(onDelegateExit func()) *Service {
	return &Service{
		pid:            uint32(os.Getpid()),
		onDelegateExit: onDelegateExit,
		done:           make(chan struct{}),
		containers:     map[string]*entry{},
		conns:          map[string]*conn{},
	}
}

// staleSocketWait bounds how long an exiting delegate may keep accepting
// connections before Triage leaves its socket alone.
const staleSocketWait = time.Second

// Done is closed when the router should exit.
func (s *Service) Done() <-chan struct{} { return s.done }

// WaitDelegates waits, at most timeout, for the delegates to exit (they do
// once they serve nothing), so that their stale sockets are removed before
// the router goes, and then for the pod lock to be released (its release
// may remove the pod's state; it waits delegateExitWait at most).
func (s *Service) WaitDelegates(timeout time.Duration) {
	defer s.unlocking.Wait()
	s.mu.Lock()
	var pending []chan struct{}
	for _, c := range s.all {
		pending = append(pending, c.closed)
	}
	s.mu.Unlock()
	deadline := time.After(timeout)
	for _, ch := range pending {
		select {
		case <-ch:
		case <-deadline:
			return
		}
	}
}

func (s *Service) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finishLocked()
}

func (s *Service) finishLocked() {
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

// dialLocked returns the shared connection to d, dialling it on first use.
func (s *Service) dialLocked(ctx context.Context, d state.Delegate) (*conn, error) {
	if c, ok := s.conns[d.Address]; ok {
		return c, nil
	}
	c := &conn{address: d.Address, version: d.Version, closed: make(chan struct{})}
	cl, err := delegate.Dial(ctx, d.Address, d.Version, func() { s.delegateClosed(c) })
	if err != nil {
		return nil, err
	}
	c.Client = cl
	s.conns[d.Address] = c
	s.all = append(s.all, c)
	return c, nil
}

// delegateClosed runs when a delegate connection ends. With containers still
// routed to it the delegate died: the router exits so that containerd cleans
// each container up through `delete`.
func (s *Service) delegateClosed(c *conn) {
	s.mu.Lock()
	if s.conns[c.address] == c {
		delete(s.conns, c.address)
	}
	if c.refs > 0 {
		log.L.WithField("delegate", c.address).Error("delegate shim exited with live containers; router exits")
		s.finishLocked()
	}
	s.mu.Unlock()
	// Before c.closed, on which the pod lock may wait (leave.go): the
	// delegate may have removed the router's socket as it exited.
	if s.onDelegateExit != nil {
		s.onDelegateExit()
	}
	go func() {
		delegate.RemoveStaleSocket(c.address, staleSocketWait)
		close(c.closed)
	}()
}

func (s *Service) lookup(id string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s is not served by this triage router", id)
	}
	return c, nil
}

// Create routes a new container to the delegate its bundle marker names, with
// the options Triage built for that delegate. A container without a marker
// joined its pod without a `start`: it gets one first.
func (s *Service) Create(ctx context.Context, r *taskv2.CreateTaskRequest) (*taskv2.CreateTaskResponse, error) {
	m, err := state.ReadContainer(r.Bundle)
	if errors.Is(err, state.ErrNoMarker) && s.join != nil {
		if err = s.join(r.ID, r.Bundle, r.Options); err != nil {
			// The start's own kind: a refusal, an unrunnable tier, a lost daemon.
			return nil, errgrpc.ToGRPC(fmt.Errorf("container %s: %w", r.ID, err))
		}
		m, err = state.ReadContainer(r.Bundle)
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("container %s: %w: %w", r.ID, err, errdefs.ErrFailedPrecondition))
	}
	s.mu.Lock()
	c, err := s.dialLocked(ctx, m.Delegate)
	if err == nil {
		// Track before forwarding: containerd sends Delete and Shutdown
		// even after a failed Create, and they must reach the delegate.
		if old, ok := s.containers[r.ID]; ok {
			old.refs--
		}
		s.containers[r.ID] = &entry{conn: c, bundle: r.Bundle, exec: m.Exec, started: newStartGate(m.Delegate.Runtime)}
		c.refs++
		c.heldShutdown = nil
		s.bundles = filepath.Dir(r.Bundle)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("container %s: %w: %w", r.ID, err, errdefs.ErrUnavailable))
	}
	r.Options = nil
	if m.Delegate.Options != nil {
		r.Options = &anypb.Any{TypeUrl: m.Delegate.OptionsType, Value: m.Delegate.Options}
	}
	return c.Create(ctx, r)
}

// Connect answers containerd's liveness and pid query. For a container this
// router does not serve it replies pid 0 without error, as runc does, so that
// a reload does not treat the whole shim as dead.
func (s *Service) Connect(ctx context.Context, r *taskv2.ConnectRequest) (*taskv2.ConnectResponse, error) {
	c, err := s.lookup(r.ID)
	if err != nil {
		return &taskv2.ConnectResponse{ShimPid: s.pid}, nil
	}
	resp, err := c.Connect(ctx, r)
	if err != nil {
		return nil, err
	}
	resp.ShimPid = s.pid
	return resp, nil
}

// Shutdown forgets the container and ends the router with its last one,
// unless a member a start routed here is still to come (leave.go). The
// delegate gets the Shutdown of the last container it serves here: runc's,
// gVisor's and Kata's shims exit then, and do nothing while they serve
// another, but a Shutdown that overtook the Create of another container
// (one this router forwards now) would end runc's shim under it. The
// container is forgotten first: a delegate that serves one container
// (gVisor without grouping) exits inside this very call, and its connection
// closing must not look like a crash under a live container.
func (s *Service) Shutdown(ctx context.Context, r *taskv2.ShutdownRequest) (*emptypb.Empty, error) {
	var pod *state.Pod
	if s.pod != nil {
		pod = s.pod.lock(ctx)
	}
	s.mu.Lock()
	e, ok := s.containers[r.ID]
	var exiting []*conn
	if ok {
		delete(s.containers, r.ID)
		e.refs--
	}
	pending := s.pendingLocked(ctx, pod, r.ID)
	forward := false
	if ok && e.refs == 0 {
		if routedTo(pending, s.bundles, e.address) {
			e.heldShutdown = r
		} else {
			forward = true
			exiting = append(exiting, e.conn)
		}
	}
	leave := len(s.containers) == 0 && len(pending) == 0
	var held []heldShutdown
	if leave {
		held = s.leaveLocked()
	} else if len(s.containers) == 0 && !s.awaiting {
		s.awaiting = true
		go s.awaitPending(context.WithoutCancel(ctx))
	}
	s.mu.Unlock()
	if forward {
		e.forwardShutdown(ctx, r)
	}
	exiting = append(exiting, shutdownHeld(ctx, held)...)
	if leave {
		s.finish()
	}
	s.unlockAfterExit(pod, exiting, leave)
	return &emptypb.Empty{}, nil
}

// wireFor returns the wire a relayed call method for container id goes
// over, or nil when the call needs the Service: the container is not served
// here, its Start and CloseIO pass a start gate, or the wire cannot be had.
func (s *Service) wireFor(method, id string) *wire {
	s.mu.Lock()
	e, ok := s.containers[id]
	s.mu.Unlock()
	if !ok || e.started != nil && (method == "Start" || method == "CloseIO") {
		return nil
	}
	e.wireMu.Lock()
	defer e.wireMu.Unlock()
	if e.wire == nil {
		w, err := dialWire(e.address, e.version)
		if err != nil {
			log.L.WithError(err).Warn("relay to delegate; its calls go through the task service")
			return nil
		}
		e.wire = w
	}
	return e.wire
}

// relayIdle tells whether no relayed call waits for its reply.
func (s *Service) relayIdle() bool {
	s.mu.Lock()
	all := slices.Clone(s.all)
	s.mu.Unlock()
	for _, c := range all {
		c.wireMu.Lock()
		w := c.wire
		c.wireMu.Unlock()
		if w != nil && !w.idle() {
			return false
		}
	}
	return true
}

// route forwards r to the delegate that owns the container r names.
func route[Req interface{ GetID() string }, Resp any](s *Service, ctx context.Context, r Req, call func(*conn, context.Context, Req) (Resp, error)) (Resp, error) {
	c, err := s.lookup(r.GetID())
	if err != nil {
		var zero Resp
		return zero, err
	}
	return call(c.conn, ctx, r)
}

func (s *Service) State(ctx context.Context, r *taskv2.StateRequest) (*taskv2.StateResponse, error) {
	return route(s, ctx, r, (*conn).State)
}

func (s *Service) Start(ctx context.Context, r *taskv2.StartRequest) (*taskv2.StartResponse, error) {
	e, err := s.lookup(r.ID)
	if err != nil {
		return nil, err
	}
	defer e.started.release(r.ExecID)
	return e.Start(ctx, r)
}

// Delete forwards, and records a clean delete of the container in its bundle:
// the `delete` containerd runs next then answers from the record instead of
// running the delegate's own cleanup a second time.
func (s *Service) Delete(ctx context.Context, r *taskv2.DeleteRequest) (*taskv2.DeleteResponse, error) {
	c, err := s.lookup(r.ID)
	if err != nil {
		return nil, err
	}
	resp, err := c.Delete(ctx, r)
	if err != nil {
		return resp, err
	}
	c.started.release(r.ExecID)
	if r.ExecID != "" {
		return resp, nil
	}
	recordExit(ctx, c.bundle, resp)
	return resp, nil
}

func (s *Service) Pids(ctx context.Context, r *taskv2.PidsRequest) (*taskv2.PidsResponse, error) {
	return route(s, ctx, r, (*conn).Pids)
}

func (s *Service) Pause(ctx context.Context, r *taskv2.PauseRequest) (*emptypb.Empty, error) {
	return route(s, ctx, r, (*conn).Pause)
}

func (s *Service) Resume(ctx context.Context, r *taskv2.ResumeRequest) (*emptypb.Empty, error) {
	return route(s, ctx, r, (*conn).Resume)
}

func (s *Service) Checkpoint(ctx context.Context, r *taskv2.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return route(s, ctx, r, (*conn).Checkpoint)
}

func (s *Service) Kill(ctx context.Context, r *taskv2.KillRequest) (*emptypb.Empty, error) {
	return route(s, ctx, r, (*conn).Kill)
}

// Exec hardens the exec's process spec as the container's tier requires
// before forwarding: an exec must not escape what the container was given.
func (s *Service) Exec(ctx context.Context, r *taskv2.ExecProcessRequest) (*emptypb.Empty, error) {
	e, err := s.lookup(r.ID)
	if err != nil {
		return nil, err
	}
	if r.Spec, err = hardenExec(e.bundle, e.exec, r.ExecID, r.Spec); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	resp, err := e.Exec(ctx, r)
	if err == nil {
		e.started.expect(r.ExecID)
	}
	return resp, err
}

// hardenExec is the process spec of exec execID into the container of bundle,
// hardened by the container's rules, or why it is refused.
func hardenExec(bundle string, rules execrule.Rules, execID string, spec *anypb.Any) (*anypb.Any, error) {
	var p specs.Process
	if err := json.Unmarshal(spec.GetValue(), &p); err != nil {
		return nil, fmt.Errorf("exec %s: process spec: %w: %w", execID, err, errdefs.ErrInvalidArgument)
	}
	container, err := state.ReadSpec(bundle)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w: %w", execID, err, errdefs.ErrFailedPrecondition)
	}
	if err := execrule.Exec(&p, container, rules); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	b, err := json.Marshal(&p)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: spec.GetTypeUrl(), Value: b}, nil
}

// checkUpdate refuses an update of container id's resources that its rules
// forbid: new device access, a pids limit above the tier's.
func checkUpdate(id string, resources *anypb.Any, rules execrule.Rules) error {
	if resources == nil {
		return nil
	}
	var lr specs.LinuxResources
	if err := json.Unmarshal(resources.GetValue(), &lr); err != nil {
		return fmt.Errorf("update %s: resources: %w: %w", id, err, errdefs.ErrInvalidArgument)
	}
	if err := execrule.Update(&lr, rules); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return nil
}

func (s *Service) ResizePty(ctx context.Context, r *taskv2.ResizePtyRequest) (*emptypb.Empty, error) {
	return route(s, ctx, r, (*conn).ResizePty)
}

// CloseIO waits for the process's Start where the delegate needs it (see startGate).
func (s *Service) CloseIO(ctx context.Context, r *taskv2.CloseIORequest) (*emptypb.Empty, error) {
	e, err := s.lookup(r.ID)
	if err != nil {
		return nil, err
	}
	if err := e.started.wait(ctx, r.ExecID); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return e.CloseIO(ctx, r)
}

// Update refuses new device access: the container's tier decided it at
// create.
func (s *Service) Update(ctx context.Context, r *taskv2.UpdateTaskRequest) (*emptypb.Empty, error) {
	e, err := s.lookup(r.ID)
	if err != nil {
		return nil, err
	}
	if err := checkUpdate(r.ID, r.GetResources(), e.exec); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return e.Update(ctx, r)
}

// Wait is forwarded as its own blocking call; containerd keeps several open.
func (s *Service) Wait(ctx context.Context, r *taskv2.WaitRequest) (*taskv2.WaitResponse, error) {
	return route(s, ctx, r, (*conn).Wait)
}

func (s *Service) Stats(ctx context.Context, r *taskv2.StatsRequest) (*taskv2.StatsResponse, error) {
	return route(s, ctx, r, (*conn).Stats)
}
