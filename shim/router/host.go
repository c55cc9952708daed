package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/shim/state"
)

// A runc pod's router is the pod's shim: it hosts containerd's own runc task
// service (cmd/containerd-shim-runc-v2/task) in its process, with Triage's
// policy in front of Create, Exec, Update and Delete. A runc pod thus costs
// one process, as with runc's own shim, and no call takes a hop. The router
// does what runc's shim process does around that service: it is the child
// subreaper of the pod's containers and reaps them through containerd's
// reaper (every child it starts is started and waited for through it), it
// ignores SIGPIPE and ends on SIGTERM, and it publishes the task events to
// containerd, waiting for the last ones to be sent before it exits.

// publisherDrain bounds the wait for the last task events to reach
// containerd as the pod's shim exits.
const publisherDrain = 5 * time.Second

// hosted is the task service of a runc pod: containerd's runc task service
// with Triage's policy before it.
type hosted struct {
	taskv3.TTRPCTaskService
	join func(id, bundle string, options *anypb.Any) error
	pod  *podGuard

	mu sync.Mutex
	// containers maps a container id to its bundle and exec rules, from
	// Create to Shutdown; guarded by mu.
	containers map[string]hostedEntry
	// awaiting is set while awaitPending runs; guarded by mu.
	awaiting bool
}

type hostedEntry struct {
	bundle string
	exec   execrule.Rules
}

// serveHosted serves the pod's runc containers in this process until the
// last one is shut down, or SIGTERM.
func serveHosted(ctx context.Context, j joiner, pod string) error {
	// As containerd's shim library sets a shim's runtime.
	debug.SetGCPercent(40)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
	// Before the first `runc create`: the containers' init processes
	// become this process's children when runc exits.
	if err := reaper.SetSubreaper(1); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	if err := adjustOOMScore(); err != nil {
		log.G(ctx).WithError(err).Warn("set the pod shim's OOM score")
	}
	l, err := net.FileListener(os.NewFile(3, "router-socket"))
	if err != nil {
		return fmt.Errorf("router listener: %w", err)
	}
	// The socket goes with the shim, also when it cannot start serving.
	sock := newSocketFile(l.Addr().String())
	defer sock.release()
	// containerd's runc task service removes, at shutdown, the socket that
	// ./address names, which on containerd 1.x is this router's own: it is
	// built where there is none. The log fifo is already open.
	if err := os.Chdir("/"); err != nil {
		return err
	}
	ctx = namespaces.WithNamespace(ctx, j.namespace)
	ctx, sd := shutdown.WithShutdown(ctx)
	defer sd.Shutdown()
	go handleSignals(ctx, sd)
	publisher, err := shim.NewPublisher(os.Getenv(ttrpcAddressEnv))
	if err != nil {
		return fmt.Errorf("events to containerd: %w", err)
	}
	runc, err := task.NewTaskService(ctx, publisher, sd)
	if err != nil {
		publisher.Close()
		return err
	}
	j.run = reaperRun
	h := &hosted{
		TTRPCTaskService: runc,
		join:             j.join,
		pod:              &podGuard{address: j.address, namespace: j.namespace, id: pod, sock: sock},
		containers:       map[string]hostedEntry{},
	}
	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return err
	}
	taskv3.RegisterTTRPCTaskService(srv, h)
	registerTaskV2(srv, h)
	// As the relay's awaitFirst: a pod shim containerd lost before its first
	// Create leaves.
	h.awaiting = true
	go h.awaitPending(ctx, &taskv3.ShutdownRequest{ID: pod})
	go func() {
		if err := srv.Serve(ctx, l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			log.G(ctx).WithError(err).Error("pod shim serve")
			sd.Shutdown()
		}
	}()
	<-sd.Done()
	// The task service sends its queued events, then closes the publisher:
	// without this wait containerd missed the pod's last /tasks/delete.
	select {
	case <-publisher.Done():
	case <-time.After(publisherDrain):
		log.G(ctx).Warn("pod shim exits before its last events were sent")
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// adjustOOMScore gives the pod shim containerd's OOM score plus one, as runc's
// shim gets. Its start's parent is containerd, whose score it reads; this
// process's parent, Triage's front, may have exited already, but it
// inherited containerd's score, as did this process.
func adjustOOMScore() error {
	score, err := sys.GetOOMScoreAdj(os.Getpid())
	if err != nil {
		return err
	}
	return sys.AdjustOOMScore(os.Getpid(), score+1)
}

// handleSignals reaps the pod's processes on SIGCHLD, ignores SIGPIPE (a
// container's closed pipe must not end its shim) and shuts down on SIGTERM
// or SIGINT, as containerd's shims do.
func handleSignals(ctx context.Context, sd shutdown.Service) {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD, unix.SIGPIPE, unix.SIGTERM, unix.SIGINT)
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-ch:
			switch s {
			case unix.SIGCHLD:
				if err := reaper.Reap(); err != nil {
					log.G(ctx).WithError(err).Error("reap exit status")
				}
			case unix.SIGTERM, unix.SIGINT:
				log.G(ctx).WithField("signal", s).Info("pod shim shuts down")
				sd.Shutdown()
			}
		}
	}
}

// Create creates the container with the runc options Triage built for its
// tier, once its `start` classified it and hardened its spec: a container
// that joined the pod without one (containerd 2.4+) gets it first.
func (h *hosted) Create(ctx context.Context, r *taskv3.CreateTaskRequest) (*taskv3.CreateTaskResponse, error) {
	m, err := state.ReadContainer(r.Bundle)
	if errors.Is(err, state.ErrNoMarker) && h.join != nil {
		if err = h.join(r.ID, r.Bundle, r.Options); err != nil {
			return nil, errgrpc.ToGRPC(fmt.Errorf("container %s: %w", r.ID, err))
		}
		m, err = state.ReadContainer(r.Bundle)
	}
	if err == nil && !m.Delegate.Hosted {
		err = fmt.Errorf("its start handed it to %s, not to this pod's shim", m.Delegate.Binary)
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("container %s: %w: %w", r.ID, err, errdefs.ErrFailedPrecondition))
	}
	// Tracked before the create: containerd sends Delete and Shutdown
	// even after a failed Create.
	h.mu.Lock()
	h.containers[r.ID] = hostedEntry{bundle: r.Bundle, exec: m.Exec}
	h.mu.Unlock()
	r.Options = nil
	if m.Delegate.Options != nil {
		r.Options = &anypb.Any{TypeUrl: m.Delegate.OptionsType, Value: m.Delegate.Options}
	}
	return h.TTRPCTaskService.Create(ctx, r)
}

func (h *hosted) entry(id string) (hostedEntry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.containers[id]
	if !ok {
		return e, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s is not served by this pod's shim", id)
	}
	return e, nil
}

// Exec hardens the exec's process as the container's tier requires.
func (h *hosted) Exec(ctx context.Context, r *taskv3.ExecProcessRequest) (*emptypb.Empty, error) {
	e, err := h.entry(r.ID)
	if err != nil {
		return nil, err
	}
	if r.Spec, err = hardenExec(e.bundle, e.exec, r.ExecID, r.Spec); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return h.TTRPCTaskService.Exec(ctx, r)
}

// Update refuses new device access and a pids limit above the tier's.
func (h *hosted) Update(ctx context.Context, r *taskv3.UpdateTaskRequest) (*emptypb.Empty, error) {
	e, err := h.entry(r.ID)
	if err != nil {
		return nil, err
	}
	if err := checkUpdate(r.ID, r.Resources, e.exec); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return h.TTRPCTaskService.Update(ctx, r)
}

// Delete deletes, and records a clean delete of the container in its
// bundle for the `delete` containerd may run next.
func (h *hosted) Delete(ctx context.Context, r *taskv3.DeleteRequest) (*taskv3.DeleteResponse, error) {
	resp, err := h.TTRPCTaskService.Delete(ctx, r)
	if err != nil || r.ExecID != "" {
		return resp, err
	}
	if e, lerr := h.entry(r.ID); lerr == nil {
		recordExit(ctx, e.bundle, resp)
	}
	return resp, nil
}

// recordExit writes a clean delete's reply into bundle (see state.WriteExit).
func recordExit(ctx context.Context, bundle string, resp proto.Message) {
	b, err := proto.Marshal(resp)
	if err == nil {
		err = state.WriteExit(bundle, b)
	}
	if err != nil {
		log.G(ctx).WithError(err).Warn("record clean delete")
	}
}

// Shutdown forgets the container; with the pod's last one gone, and no
// member a start named this shim to still to come (leave.go), the task
// service shuts down and the process exits.
func (h *hosted) Shutdown(ctx context.Context, r *taskv3.ShutdownRequest) (*emptypb.Empty, error) {
	pod := h.pod.lock(ctx)
	h.mu.Lock()
	delete(h.containers, r.ID)
	pending := pendingMembers(ctx, pod, r.ID, h.served)
	leave := len(h.containers) == 0 && len(pending) == 0
	if leave {
		h.pod.sock.release()
	} else if len(h.containers) == 0 && !h.awaiting {
		h.awaiting = true
		go h.awaitPending(context.WithoutCancel(ctx), r)
	}
	h.mu.Unlock()
	unlockPod(pod, leave)
	if !leave {
		return &emptypb.Empty{}, nil
	}
	return h.TTRPCTaskService.Shutdown(ctx, r)
}

// served tells whether container id is served here; the caller holds h.mu.
func (h *hosted) served(id string) bool {
	_, ok := h.containers[id]
	return ok
}

// awaitPending shuts down once no member the shim was named to is pending
// (see awaitMembers).
func (h *hosted) awaitPending(ctx context.Context, r *taskv3.ShutdownRequest) {
	pod, pending, ok := awaitMembers(ctx, h.pod, &h.mu, func() bool {
		busy := len(h.containers) > 0
		if busy {
			h.awaiting = false
		}
		return busy
	}, h.served)
	if !ok {
		return
	}
	h.awaiting = false
	h.pod.sock.release()
	h.mu.Unlock()
	unlockPod(pod, len(pending) == 0)
	h.TTRPCTaskService.Shutdown(ctx, r)
}

// unlockPod releases the pod lock; with the pod's last member gone (empty)
// the pod's folder goes, as the last `delete` would have removed it.
func unlockPod(pod *state.Pod, empty bool) {
	if pod == nil {
		return
	}
	if !empty {
		pod.Unlock()
		return
	}
	if err := pod.Remove(); err != nil {
		log.L.WithError(err).Warn("remove pod state")
	}
}

// reaperRun runs cmd as a child of a process whose children containerd's
// reaper waits for: a plain Wait would race the reaper for the status.
func reaperRun(cmd *exec.Cmd) (int, error) {
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		return 0, err
	}
	return reaper.Default.Wait(cmd, ec)
}
