package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	gorunc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/triage-runtime/triage/node"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/state"
)

// reapTimeout bounds the wait for an orphaned container to die; containerd
// gives the whole `delete` cleanupTimeout.
const reapTimeout = 2 * time.Second

// cleanupTimeout is how long containerd waits for a shim's `delete` (its
// io.containerd.timeout.shim.cleanup): it kills a slower one and keeps the task's
// bundle for good, which refuses every later task of that id.
const cleanupTimeout = 5 * time.Second

// deleteAction runs after every task delete and after a router crash. It
// hands the container to its delegate's own `delete` and relays the reply.
// When the router is gone, the delegate may still run the container: it is
// killed and deleted through the delegate's task API first, so that no
// container or shim outlives the router. Once begun, the cleanup is finished
// even if containerd stops waiting for it.
func deleteAction(ctx context.Context, f flags) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	bundle := f.bundle
	if bundle == "" {
		bundle = f.dir
	}
	m, err := state.ReadContainer(bundle)
	if errors.Is(err, state.ErrNoMarker) {
		// start failed before it recorded a delegate: nothing ran, but a start killed
		// half-way may have left the delegate it was starting, serving nothing.
		endStaleDelegate(ctx, f, "unix://"+shimSocket(defaultShimSocketDir, f.address, f.namespace, f.id), f.id)
		if err := unix.Unmount(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			log.G(ctx).WithError(err).Warn("unmount rootfs")
		}
		return proto.Marshal(&taskv2.DeleteResponse{ExitStatus: 137, ExitedAt: timestamppb.Now()})
	}
	if err != nil {
		return nil, err
	}
	sock := routerSocket(f.address, f.namespace, m.Pod)
	if resp, ok := state.ReadExit(bundle); ok {
		// The router deleted the container through its delegate: the
		// delegate's own cleanup has nothing left to do.
		err := leavePod(f, m.Pod, sock)
		recordDelete(ctx, m.Metrics)
		return resp, err
	}
	if m.Delegate.Hosted {
		resp := stopHosted(ctx, f.namespace, f.id, bundle, ownCgroup(bundle, f.id))
		err := leavePod(f, m.Pod, sock)
		recordDelete(ctx, m.Metrics)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(resp)
	}
	var reaped *taskv2.DeleteResponse
	var cgroup string
	orphan := !canConnect(sock)
	if orphan {
		cgroup = ownCgroup(bundle, f.id)
		reaped = reapOrphan(ctx, m.Delegate, f.id, bundle, lastInPod(f, m.Pod))
	}
	inv := delegate.Invocation{
		Binary: m.Delegate.Binary, Namespace: f.namespace, Address: f.address, PublishBinary: f.publishBinary,
		ID: f.id, Bundle: bundle, Debug: f.debug, Env: f.env,
	}
	out, derr := inv.Delete(ctx)
	if orphan && policy.KindOf(m.Delegate.Runtime) == policy.KindGVisor {
		endGVisorLeftovers(ctx, f, bundle, cgroup, delegate.ConfigPath(m.Delegate.OptionsType, m.Delegate.Options))
	}
	if err := leavePod(f, m.Pod, sock); err != nil {
		return nil, err
	}
	recordDelete(ctx, m.Metrics)
	if reaped != nil {
		return proto.Marshal(reaped)
	}
	if derr != nil {
		return nil, derr
	}
	return out, nil
}

// endGVisorLeftovers ends what runsc leaves of a container whose router was killed, at
// times in the middle of its delegate's Create: runsc's processes for the container (a
// `runsc create` cut short goes on starting its sandbox and gofer, which runsc never
// records), then the container's cgroup (ownCgroup), and the sandbox's control socket in
// runsc's root (configPath is the tier's runsc shim configuration, which names it) when
// nothing serves it.
func endGVisorLeftovers(ctx context.Context, f flags, bundle, cgroup, configPath string) {
	if pids := runscProcesses(bundle); len(pids) > 0 {
		log.G(ctx).WithField("pids", pids).Warn("orphaned gVisor container: ending runsc's processes that runsc's delete left")
		drain(reapTimeout/2, func() []int { return runscProcesses(bundle) })
	}
	removeCgroup(ctx, cgroup)
	sock := filepath.Join(node.GVisorRoot(configPath), f.namespace, "runsc-"+f.id+".sock")
	if _, err := os.Lstat(sock); err == nil {
		delegate.RemoveStaleSocket("unix://"+sock, 0)
	}
}

// stopHosted ends a container of a runc tier whose pod shim did not delete it
// (killed, or its Create failed half-way), as runc's own shim's `delete`
// does, in this process with containerd's runc shim library: runc deletes
// it by force, its root filesystem is unmounted, and its exit is the one
// the pod shim recorded, else SIGKILL's. A cgroup runc made but never
// recorded (its `runc create` killed with the pod shim) is removed too.
func stopHosted(ctx context.Context, ns, id, bundle, cgroup string) *taskv2.DeleteResponse {
	ctx = namespaces.WithNamespace(ctx, ns)
	binary, err := runcshim.ReadRuntime(bundle)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.G(ctx).WithError(err).Warn("runc binary of the container")
	}
	root := ""
	if opts, err := runcshim.ReadOptions(bundle); err != nil {
		log.G(ctx).WithError(err).Warn("runc options of the container")
	} else if opts != nil {
		root = opts.Root
	}
	r := process.NewRunc(root, bundle, ns, binary, false)
	if err := r.Delete(ctx, id, &gorunc.DeleteOpts{Force: true}); err != nil {
		log.G(ctx).WithError(err).Debug("runc delete")
	}
	removeCgroup(ctx, cgroup)
	exitedAt := time.Now()
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	if e, err := runcshim.ReadExitStatus(bundle); err == nil {
		return &taskv2.DeleteResponse{Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: timestamppb.New(e.Timestamp)}
	}
	pid, _ := gorunc.ReadPidFile(filepath.Join(bundle, process.InitPidFile))
	return &taskv2.DeleteResponse{Pid: uint32(pid), ExitStatus: 128 + uint32(unix.SIGKILL), ExitedAt: timestamppb.New(exitedAt)}
}

// leavePod removes the container from its pod; with the last one gone the
// pod's state folder and router socket go too. The router does this itself
// for the containers it shuts down (router/leave.go), under the pod lock,
// which it may hold while a delegate exits: a container already gone from
// the pod is not waited for.
func leavePod(f flags, podID, sock string) error {
	if !state.HasMember(f.address, f.namespace, podID, f.id) {
		return nil
	}
	pod, err := state.LockPod(f.address, f.namespace, podID)
	if err != nil {
		return err
	}
	remaining, err := pod.RemoveMember(f.id)
	if err != nil || len(remaining) > 0 {
		pod.Unlock()
		return err
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		pod.Unlock()
		return err
	}
	return pod.Remove()
}

// lastInPod tells whether container id is the last member of its pod, so that its
// delegate serves no other container of it.
func lastInPod(f flags, podID string) bool {
	pod, err := state.LockExistingPod(f.address, f.namespace, podID)
	if err != nil || pod == nil {
		return pod == nil && err == nil
	}
	defer pod.Unlock()
	members, err := pod.Members()
	return err == nil && !slices.ContainsFunc(members, func(m string) bool { return m != f.id })
}

// reapOrphan stops a container whose router died, through its delegate's
// task API: kill, wait, delete, then ask the delegate to shut down (it exits
// once it serves nothing). It returns the Delete reply, or nil when the
// delegate no longer knows the container. A delegate that still does not
// exit, although last says it serves no other container (its own delete
// failed: gVisor's fails when containerd has already unmounted the rootfs of a
// dead shim), is killed, so that no shim outlives its pod.
func reapOrphan(ctx context.Context, d state.Delegate, id, bundle string, last bool) *taskv2.DeleteResponse {
	ctx, cancel := context.WithTimeout(ctx, 2*reapTimeout)
	defer cancel()
	closed := make(chan struct{})
	c, err := delegate.Dial(ctx, d.Address, d.Version, func() { close(closed) })
	if err != nil {
		delegate.RemoveStaleSocket(d.Address, 0)
		return nil
	}
	return endDelegate(ctx, c, closed, d.Address, id, reapTimeout, func() bool { return last && delegate.KillShim(bundle, d.Binary) })
}

// endDelegate deletes container id through its delegate c (see reapContainer), asks the
// delegate to shut down, which it does once it serves nothing, and waits for it to go
// (closed), at most wait, or a tenth of it when the delete failed. kill ends a delegate
// that stays, and says whether it sent a signal; a delegate neither gone nor killed is
// left as it is. The socket of one that went is stale, and removed. It returns the
// delete's reply.
func endDelegate(ctx context.Context, c *delegate.Client, closed <-chan struct{}, address, id string, wait time.Duration, kill func() bool) *taskv2.DeleteResponse {
	resp, deleted := reapContainer(ctx, c, id)
	if !deleted {
		wait = reapTimeout / 10
	}
	if _, err := c.Shutdown(ctx, &taskv2.ShutdownRequest{ID: id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.G(ctx).WithError(err).Warn("orphaned container: shutdown")
	}
	select {
	case <-closed:
	case <-time.After(wait):
		if !kill() {
			c.Close()
			return resp
		}
		log.G(ctx).WithField("delegate", address).Warn("orphaned container: the delegate would not shut down; killed it")
		select {
		case <-closed:
		case <-time.After(reapTimeout):
		}
	}
	c.Close()
	delegate.RemoveStaleSocket(address, reapTimeout)
	return resp
}

// reapContainer kills, waits for and deletes container id through its delegate. deleted
// is false when the delete failed; resp is nil when the delegate does not know the
// container.
func reapContainer(ctx context.Context, c *delegate.Client, id string) (resp *taskv2.DeleteResponse, deleted bool) {
	st, err := callWithin(ctx, c.State, &taskv2.StateRequest{ID: id})
	if err != nil {
		if !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			log.G(ctx).WithError(err).Warn("orphaned container: state")
			return nil, false
		}
		return nil, true
	}
	// A container that was created but never started has nothing to kill or wait for
	// (gVisor refuses to signal it, and a wait would use up containerd's time for the
	// whole delete): it is deleted as it is.
	running := st.GetStatus() != tasktypes.Status_CREATED && (st.GetExitedAt() == nil || st.GetExitedAt().AsTime().IsZero())
	if running {
		if _, err := callWithin(ctx, c.Kill, &taskv2.KillRequest{ID: id, Signal: uint32(unix.SIGKILL), All: true}); err != nil {
			log.G(ctx).WithError(err).Warn("orphaned container: kill")
		} else if _, err := callWithin(ctx, c.Wait, &taskv2.WaitRequest{ID: id}); err != nil {
			log.G(ctx).WithError(err).Warn("orphaned container: wait")
		}
	}
	resp, err = callWithin(ctx, c.Delete, &taskv2.DeleteRequest{ID: id})
	if err != nil {
		log.G(ctx).WithError(err).Warn("orphaned container: delete")
		return nil, false
	}
	return resp, true
}

// callWithin makes one call to an orphan's delegate, given reapTimeout/2 to answer. A
// delegate cut off from its router in the middle of a Create may never answer some (gVisor's
// Delete of the created container); the delete then goes on without it, within
// containerd's cleanupTimeout.
func callWithin[Req, Resp any](ctx context.Context, call func(context.Context, Req) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, reapTimeout/2)
	defer cancel()
	return call(ctx, req)
}

// shutdownDelegate undoes a delegate start when Triage's own start fails
// afterwards: the delegate is shut down, and its socket, which shims built on
// containerd 1.x's library leave for containerd's `delete` to remove, goes
// with it.
func shutdownDelegate(ctx context.Context, r delegate.Reply, id string) {
	closed := make(chan struct{})
	c, err := delegate.Dial(ctx, r.Address, r.Version, func() { close(closed) })
	if err != nil {
		log.G(ctx).WithError(err).Warn("roll back delegate start")
		delegate.RemoveStaleSocket(r.Address, 0)
		return
	}
	defer c.Close()
	if _, err := c.Shutdown(ctx, &taskv2.ShutdownRequest{ID: id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.G(ctx).WithError(fmt.Errorf("shutdown %s: %w", r.Address, err)).Debug("roll back delegate start")
		return
	}
	select {
	case <-closed:
		delegate.RemoveStaleSocket(r.Address, reapTimeout)
	case <-time.After(reapTimeout):
	}
}
