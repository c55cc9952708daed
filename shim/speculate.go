package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
)

// withdrawTimeout bounds the wait for a wrongly guessed delegate to exit.
const withdrawTimeout = 3 * time.Second

// A delegate's `start` takes about as long as the rest of Triage's start
// (classifying, hardening and rewriting the spec, spawning the router). So
// start guesses the tier before containerd's records are read and, when the
// guess is a runc tier, starts its delegate at once, in parallel.
//
// This is safe because a delegate's `start` only starts its shim daemon: no
// container exists before containerd's Create, which reaches the delegate
// through the router, once the spec is hardened. A guess start does not
// take is withdrawn: the idle shim is shut down (a runc shim that serves
// other containers of its group ignores that), and before another delegate
// starts on the same socket, it is waited for.
//
// Only runc tiers are guessed, and only for a spec without runc's group
// annotation: runc's shim reads no more at start than the annotations it
// groups containers by, which hardening leaves alone but for that one (it
// strips it), whereas gVisor's and Kata's shims read annotations start adds.
type guess struct {
	binary  string
	input   []byte
	bundle  string
	pending *delegate.Pending
	taken   bool
}

// guessTier is the tier a workload will most likely run in: its pod's, or
// the one the policy gives it on what is known before containerd's records
// (its spec and namespace). The guess only decides what starts early; the
// decision is made on every fact.
func guessTier(pol *policy.Policy, member bool, pod classifier.Decision, facts classifier.Facts) *policy.Tier {
	if _, grouped := facts.Spec.Annotations[annotationRuncGroup]; grouped {
		return nil
	}
	d := pod
	if !member {
		d = classifier.Classify(pol, facts)
	}
	if d.Action != classifier.ActionRun {
		return nil
	}
	t, ok := pol.Tier(d.Tier)
	if !ok || t.Kind() != policy.KindRunc {
		return nil
	}
	return t
}

// startGuess starts tier t's delegate in the background; nil when t is nil
// or cannot run here (start then reports why, on the real decision). When
// running, if set, finds the shim that already serves the container (a runc
// group), nothing is started.
func startGuess(ctx context.Context, t *policy.Tier, inv delegate.Invocation, in startInput, running func(binary string, options []byte) (delegate.Reply, bool)) *guess {
	if t == nil {
		return nil
	}
	binary, err := runnable(t, inv.PublishBinary)
	if err != nil {
		return nil
	}
	opts, input, err := delegateInput(t, in)
	if err != nil {
		return nil
	}
	if running != nil {
		if r, ok := running(binary, opts.GetValue()); ok {
			return &guess{binary: binary, input: input, bundle: inv.Bundle, pending: delegate.Answered(binary, r)}
		}
	}
	inv.Binary = binary
	p, err := inv.Spawn(ctx, input)
	if err != nil {
		return nil
	}
	return &guess{binary: binary, input: input, bundle: inv.Bundle, pending: p}
}

// take returns the guessed delegate start when it is the one the decision
// needs: the same shim binary started with the same input.
func (g *guess) take(binary string, input []byte) (*delegate.Pending, bool) {
	if g == nil || g.binary != binary || !bytes.Equal(g.input, input) {
		return nil, false
	}
	g.taken = true
	return g.pending, true
}

// withdraw shuts down a guessed delegate start did not take. With wait, it
// returns once the shim has exited and the bundle has lost the ./address
// its start wrote: another delegate is about to start on the same socket,
// which an exiting shim would remove.
func (g *guess) withdraw(ctx context.Context, id string, wait bool) error {
	if g == nil || g.taken {
		return nil
	}
	g.taken = true
	if !g.pending.Started() {
		return nil // the group's shim: not started by this start
	}
	reply, err := g.pending.Reply()
	if err != nil {
		return nil // nothing started
	}
	c, err := delegate.Dial(ctx, reply.Address, reply.Version, func() {})
	if err != nil {
		return fmt.Errorf("withdraw the delegate started on a guess: %w", err)
	}
	defer c.Close()
	var pid int
	if wait {
		r, err := c.Connect(ctx, &taskv2.ConnectRequest{ID: id})
		if err != nil {
			return fmt.Errorf("withdraw the delegate started on a guess: %w", err)
		}
		pid = int(r.ShimPid)
	}
	if _, err := c.Shutdown(ctx, &taskv2.ShutdownRequest{ID: id}); err != nil {
		log.G(ctx).WithError(err).Debug("withdraw the delegate started on a guess")
	}
	if !wait {
		return nil
	}
	if err := waitExit(pid, withdrawTimeout); err != nil {
		return fmt.Errorf("the %s shim started on a guess (pid %d) did not exit: %w", g.binary, pid, err)
	}
	// Its start wrote its address to ./address. gVisor's start reads that
	// file as it begins and removes the socket it names as it ends: its
	// own, as both are named after the container. The next delegate must
	// find the bundle as containerd gave it.
	if err := os.Remove(filepath.Join(g.bundle, "address")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("withdraw the delegate started on a guess: %w", err)
	}
	return nil
}

// waitExit waits until process pid has exited, for at most timeout.
func waitExit(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("still running after %v", timeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}
