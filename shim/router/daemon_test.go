package router

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A delegate exits as its pod ends, after the pod's last `delete` removed
// the router's socket: the router must not bind it again then, or the
// socket outlives the router.
func TestSocketFileIsNotBoundAgainOnceReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newSocketFile(path)
	served := make(chan struct{}, 2)
	serve := func(l net.Listener) { served <- struct{}{} }

	s.rebind(context.Background(), serve)
	if len(served) != 0 {
		t.Fatalf("rebind bound a socket that was still there")
	}
	os.Remove(path)
	s.rebind(context.Background(), serve)
	<-served
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a removed socket was not bound again while serving: %v", err)
	}
	s.release()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("release left the router's own socket: %v", err)
	}
	s.rebind(context.Background(), serve)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a released socket was bound again: %v", err)
	}
}

// A new router may own the path by the time the old one leaves.
func TestSocketFileReleaseKeepsAnotherRoutersSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	s := newSocketFile(path)
	l.Close()
	// Moved aside, not removed: the new socket cannot reuse its inode.
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s.release()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("release removed another router's socket: %v", err)
	}
}
