package shim

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-runtime/triage/shim/proc"
)

// serve runs serveCalls for a stand-in containerd (a sleep) and returns its end.
func serve(t *testing.T, idle time.Duration) (sock string, containerd *exec.Cmd, ended <-chan error) {
	t.Helper()
	containerd = exec.Command("sleep", "60")
	if err := containerd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { containerd.Process.Kill(); containerd.Wait() })
	sock = filepath.Join(t.TempDir(), "d.sock")
	done := make(chan error, 1)
	go func() { done <- serveCalls(context.Background(), sock, containerd.Process.Pid, idle) }()
	deadline := time.Now().Add(5 * time.Second)
	for !canDial("unixpacket", sock) {
		if time.Now().After(deadline) {
			t.Fatal("the daemon does not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sock, containerd, done
}

func TestDaemonServesACall(t *testing.T) {
	sock, _, _ := serve(t, time.Minute)
	c, err := proc.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, _, err := c.Recv(); err != nil || m.Hello == nil || m.Hello.Protocol != proc.Protocol {
		t.Fatalf("greeting: %+v, %v", m, err)
	}
	if err := c.Send(proc.Msg{Call: &proc.Call{Args: []string{"-v"}, Dir: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	m, _, err := c.Recv()
	if err != nil || m.Done == nil || m.Done.Code != 0 || !strings.HasPrefix(string(m.Done.Stdout), "containerd-shim-triage-v2 ") {
		t.Fatalf("answer: %+v, %v; want the version", m.Done, err)
	}
}

func TestDaemonExitsWhenIdleOrWithContainerd(t *testing.T) {
	sock, _, ended := serve(t, 50*time.Millisecond)
	waitEnd(t, "an idle daemon", sock, ended)

	sock, containerd, ended := serve(t, time.Minute)
	containerd.Process.Kill()
	waitEnd(t, "a daemon whose containerd exited", sock, ended)
}

// waitEnd fails unless the daemon ends cleanly within 5 s and removes its socket.
func waitEnd(t *testing.T, what, sock string, ended <-chan error) {
	t.Helper()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not exit", what)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("%s left its socket behind: %v", what, err)
	}
}
