package router

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

	"github.com/triage-runtime/triage/shim/state"
)

// Leaving the pod.
//
// start hands a new member of a pod this router's address, and in a runc
// group the delegate shim of an earlier member, while it holds the pod lock
// (state.LockPod), and records the member before it lets go. The pod's last
// container leaving races with that: the router, or the delegate it shuts
// down, exits just after start named it, and the new container's Create
// fails ("ttrpc: closed"). With ctr, a group container started as the
// group's last one left failed 9 times in 20 on containerd 2.4 (2 in 20
// with runc's own shim, whose `start` has the same race). So the router
// decides under the same lock:
//   - it leaves only when no member is pending (recorded by a start, not yet
//     created here), and unbinds its socket before the lock goes, so a later
//     start makes a new router;
//   - a delegate that serves nothing more gets its Shutdown only when no
//     pending member was routed to it, and the lock is held until it has
//     exited, so a later start (Triage's, or runc's own, which finds a group
//     shim by its socket) never names an exiting delegate;
//   - a container's membership ends at its Shutdown, here, and the pod's
//     state with its last one, so the `delete` containerd runs next does not
//     wait on that lock.

// pendingRecheck is how often a router with no container looks again at
// the members it waits for; pendingMaxWait bounds that wait, for a member
// whose Create never came and whose `delete` never ran.
const (
	pendingRecheck = time.Second
	pendingMaxWait = time.Minute
)

// delegateExitWait bounds how long the pod lock is held for a delegate to
// exit after its last Shutdown.
const delegateExitWait = 2 * time.Second

// podGuard is the pod a router serves: where its lock is, and the router's
// socket.
type podGuard struct {
	address, namespace, id string
	sock                   *socketFile
}

// lock locks the pod's folder; nil when the pod has ended (its last
// member's `delete` removed the folder and the router's socket) or has
// started again with another router.
func (g *podGuard) lock(ctx context.Context) *state.Pod {
	pod, err := state.LockExistingPod(g.address, g.namespace, g.id)
	if err != nil {
		log.G(ctx).WithError(err).Warn("lock pod: leaving without waiting for pending members")
		return nil
	}
	if pod != nil && g.sock.taken() {
		pod.Unlock()
		return nil
	}
	return pod
}

// pendingMembers forgets container gone (the one being shut down, "" for
// none) as a member of the pod, and lists the members not served here: a
// start routed them to this router, and their Create is to come. The
// router, not gone's `delete`, ends its membership: that `delete` (leavePod)
// then need not wait for the lock this router may hold while a delegate
// exits. The caller holds the pod lock (pod may be nil: no pod, nothing
// pending) and the lock served reads under.
func pendingMembers(ctx context.Context, pod *state.Pod, gone string, served func(id string) bool) []string {
	if pod == nil {
		return nil
	}
	var members []string
	var err error
	if gone != "" {
		members, err = pod.RemoveMember(gone)
	} else {
		members, err = pod.Members()
	}
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", gone).Warn("pod members: leaving without waiting for pending ones; the container's delete ends its membership")
		return nil
	}
	var pending []string
	for _, id := range members {
		if !served(id) {
			pending = append(pending, id)
		}
	}
	return pending
}

// pendingLocked is pendingMembers for the relay; the caller holds s.mu.
func (s *Service) pendingLocked(ctx context.Context, pod *state.Pod, gone string) []string {
	return pendingMembers(ctx, pod, gone, s.servedLocked)
}

// servedLocked tells whether container id is served here; the caller holds s.mu.
func (s *Service) servedLocked(id string) bool {
	_, served := s.containers[id]
	return served
}

// routedTo tells whether one of the pending members, whose bundles are in
// bundles, was routed to the delegate at address. A marker that cannot be
// read counts as routed there: the delegate then stays until the router
// leaves.
func routedTo(pending []string, bundles, address string) bool {
	for _, id := range pending {
		m, err := state.ReadContainer(filepath.Join(bundles, id))
		if err != nil || m.Delegate.Address == address {
			return true
		}
	}
	return false
}

// leaveLocked readies the router's end: its socket goes, so that a later
// start makes a new router, and it returns the Shutdowns held back for a
// pending member that never came, for shutdownHeld to send now. The router
// then ends with finish. The caller holds the pod lock, if any, and s.mu.
func (s *Service) leaveLocked() []heldShutdown {
	if s.pod != nil {
		s.pod.sock.release()
	}
	var held []heldShutdown
	for _, c := range s.conns {
		if c.refs == 0 && c.heldShutdown != nil {
			held = append(held, heldShutdown{c, c.heldShutdown})
		}
	}
	return held
}

// heldShutdown is a connection's held-back Shutdown, taken under s.mu.
type heldShutdown struct {
	c *conn
	r *taskv2.ShutdownRequest
}

// shutdownHeld sends the held-back Shutdowns and returns the connections
// whose delegates now exit.
func shutdownHeld(ctx context.Context, held []heldShutdown) []*conn {
	conns := make([]*conn, 0, len(held))
	for _, h := range held {
		h.c.forwardShutdown(ctx, h.r)
		conns = append(conns, h.c)
	}
	return conns
}

// unlockAfterExit releases the pod lock once the delegates of conns have
// exited, or after delegateExitWait; with the pod's last member gone
// (empty), the pod's folder goes first, as the last `delete` would have
// removed it.
func (s *Service) unlockAfterExit(pod *state.Pod, conns []*conn, empty bool) {
	if pod == nil {
		return
	}
	release := func() { unlockPod(pod, empty) }
	if len(conns) == 0 {
		release()
		return
	}
	s.unlocking.Add(1)
	go func() {
		defer s.unlocking.Done()
		deadline := time.After(delegateExitWait)
		for _, c := range conns {
			select {
			case <-c.closed:
			case <-deadline:
			}
		}
		release()
	}()
}

// awaitMembers looks again, every pendingRecheck, at a pod shim that serves
// no container but was named to members that have not come yet. It returns
// once none is pending, the pod has ended, or pendingMaxWait passed, with mu
// held, the pod locked (nil when it ended) and the members still pending;
// or, with ok false and nothing held, once busy (called under mu) says a
// container is served again: its Shutdown decides then. served tells, under
// mu, whether a member is served.
func awaitMembers(ctx context.Context, guard *podGuard, mu *sync.Mutex, busy func() bool, served func(string) bool) (pod *state.Pod, pending []string, ok bool) {
	deadline := time.Now().Add(pendingMaxWait)
	for {
		time.Sleep(pendingRecheck)
		pod := guard.lock(ctx)
		mu.Lock()
		if busy() {
			mu.Unlock()
			unlockPod(pod, false)
			return nil, nil, false
		}
		pending := pendingMembers(ctx, pod, "", served)
		if len(pending) > 0 && pod != nil && time.Now().Before(deadline) {
			mu.Unlock()
			pod.Unlock()
			continue
		}
		if len(pending) > 0 {
			log.G(ctx).WithField("members", pending).Warn("members never created here: the pod's shim leaves")
		}
		return pod, pending, true
	}
}

// awaitFirst makes a router that serves nothing yet leave as one whose
// containers have all gone does (awaitPending). containerd sends Create right
// after start, so only a router containerd lost, killed between the start and
// its Create, ever leaves so: nothing else would shut it down.
func (s *Service) awaitFirst(ctx context.Context) {
	s.mu.Lock()
	s.awaiting = true
	s.mu.Unlock()
	go s.awaitPending(ctx)
}

// awaitPending leaves once no member the router was named to is pending
// (see awaitMembers).
func (s *Service) awaitPending(ctx context.Context) {
	pod, pending, ok := awaitMembers(ctx, s.pod, &s.mu, func() bool {
		busy := len(s.containers) > 0 || s.closed
		if busy {
			s.awaiting = false
		}
		return busy
	}, s.servedLocked)
	if !ok {
		return
	}
	s.awaiting = false
	held := s.leaveLocked()
	s.mu.Unlock()
	exiting := shutdownHeld(ctx, held)
	s.finish()
	s.unlockAfterExit(pod, exiting, len(pending) == 0)
}

// forwardShutdown sends r to the delegate; a delegate that exits inside
// the call (gVisor's per-container shim, Kata) closes the connection first.
func (c *conn) forwardShutdown(ctx context.Context, r *taskv2.ShutdownRequest) {
	if _, err := c.Shutdown(ctx, r); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.G(ctx).WithError(err).WithField("id", r.ID).Warn("delegate shutdown")
	}
}
