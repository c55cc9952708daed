package router

import (
	"context"
	"strings"
	"sync"
)

// startGate holds a process's CloseIO until its Start has been forwarded. Kata's CloseIO
// waits, holding the shim's lock, for the stdin copy that only Start begins, and Start
// needs that lock: a CloseIO sent first (ctr sends one as soon as its own stdin ends)
// deadlocks the Kata shim for good. Same wait as
// https://github.com/kata-containers/kata-containers/issues/10825.
type startGate struct {
	mu sync.Mutex
	// pending maps an exec id ("" for the init process) to a channel closed once its
	// Start was forwarded or the process deleted; guarded by mu.
	pending map[string]chan struct{}
}

// newStartGate returns a gate for a container of runtimeType, or nil when its delegate
// needs none.
func newStartGate(runtimeType string) *startGate {
	if !strings.HasPrefix(runtimeType, "io.containerd.kata.") {
		return nil
	}
	return &startGate{pending: map[string]chan struct{}{"": make(chan struct{})}}
}

// expect registers a process that has not started yet.
func (g *startGate) expect(execID string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.pending[execID]; !ok {
		g.pending[execID] = make(chan struct{})
	}
}

// release lets the process's CloseIO through.
func (g *startGate) release(execID string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.pending[execID]; ok {
		close(ch)
		delete(g.pending, execID)
	}
}

// wait blocks until the process may take a CloseIO, or ctx ends.
func (g *startGate) wait(ctx context.Context, execID string) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	ch, ok := g.pending[execID]
	g.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
