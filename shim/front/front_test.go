package front

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/triage-runtime/triage/shim/proc"
)

func TestFlagValue(t *testing.T) {
	args := []string{"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "start"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args, "/run/containerd/containerd.sock"},
		{[]string{"--address=/a.sock", "delete"}, "/a.sock"},
		{[]string{"-debug", "-address", "/b.sock", "-id", "x", "start"}, "/b.sock"},
		{[]string{"-info"}, ""},
		{[]string{"-address"}, ""},
	} {
		if got := flagValue(tc.args, "address"); got != tc.want {
			t.Errorf("flagValue(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// daemon plays triage-shimd on a socket in a temporary folder: it greets and hands the front's
// call to serve, with a proc.Remote that starts processes through the front.
func daemon(t *testing.T, serve func(c *proc.Conn, call *proc.Call, r *proc.Remote)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := l.AcceptUnix()
		if err != nil {
			return
		}
		c := proc.NewConn(nc)
		defer c.Close()
		if c.Send(proc.Msg{Hello: &proc.Hello{Protocol: proc.Protocol}}) != nil {
			return
		}
		m, _, err := c.Recv()
		if err != nil || m.Call == nil {
			return // the front left: a test that expects a call fails on its answer
		}
		r := proc.NewRemote(c)
		go r.Receive()
		serve(c, m.Call, r)
	}()
	return sock
}

func TestCallStartsTheDaemonsProcessesAsItsChildren(t *testing.T) {
	sock := daemon(t, func(c *proc.Conn, call *proc.Call, r *proc.Remote) {
		if string(call.Stdin) != "options" || !slices.Equal(call.Args, []string{"-id", "c1", "start"}) {
			t.Errorf("call = %q with stdin %q", call.Args, call.Stdin)
		}
		inR, inW, _ := os.Pipe()
		outR, outW, _ := os.Pipe()
		inW.WriteString("from-the-daemon\n")
		inW.Close()
		cmd := exec.Command("/bin/sh", "-c", "cat; echo $PPID; exit 3")
		cmd.Stdin, cmd.Stdout = inR, outW
		p, err := r.Start(cmd)
		inR.Close()
		outW.Close()
		if err != nil {
			t.Errorf("start: %v", err)
			return
		}
		out, _ := io.ReadAll(outR)
		if want := fmt.Sprintf("from-the-daemon\n%d\n", os.Getpid()); string(out) != want {
			t.Errorf("the process printed %q, want %q (its parent is the front)", out, want)
		}
		if err := p.Wait(); err == nil || err.Error() != "exit status 3" {
			t.Errorf("wait: %v, want exit status 3", err)
		}
		c.Send(proc.Msg{Done: &proc.Done{Code: 7, Stdout: []byte("unix:///run/x"), Stderr: []byte("note")}})
	})
	var stdout, stderr bytes.Buffer
	code, answered, _ := call(sock, []string{"-id", "c1", "start"}, "", nil, strings.NewReader("options"), &stdout, &stderr)
	if !answered || code != 7 || stdout.String() != "unix:///run/x" || stderr.String() != "note" {
		t.Fatalf("call: answered %v, exit %d, stdout %q, stderr %q; want the daemon's answer", answered, code, stdout.String(), stderr.String())
	}
}

func TestCallWithoutAGreetingIsLeftToTheFront(t *testing.T) {
	stdin := strings.NewReader("options")
	if _, answered, _ := call(filepath.Join(t.TempDir(), "none.sock"), nil, "", nil, stdin, io.Discard, io.Discard); answered {
		t.Fatal("answered without a daemon")
	}
	// A daemon that accepts but never greets (stopped, wedged).
	sock := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, answered, _ := call(sock, nil, "", nil, stdin, io.Discard, io.Discard); answered {
		t.Fatal("answered by a daemon that never greeted")
	}
	if stdin.Len() != len("options") {
		t.Fatal("stdin was read: the call could not run in the front any more")
	}
}

func TestDaemonGoneMidCallKillsWhatItStarted(t *testing.T) {
	pid := make(chan int, 1)
	sock := daemon(t, func(c *proc.Conn, _ *proc.Call, r *proc.Remote) {
		p, err := r.Start(exec.Command("/bin/sleep", "60"))
		if err != nil {
			t.Errorf("start: %v", err)
			pid <- 0
			return
		}
		pid <- p.Pid()
		// Returning closes the connection without a Done: the daemon died.
	})
	var stderr bytes.Buffer
	code, answered, _ := call(sock, []string{"start"}, "", nil, strings.NewReader(""), io.Discard, &stderr)
	if !answered || code != ExitLost || !strings.Contains(stderr.String(), "the workload was not started") {
		t.Fatalf("call: answered %v, exit %d, stderr %q; want a failure that says the workload was not started", answered, code, stderr.String())
	}
	p := <-pid
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(p, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs after its daemon died", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A delete the daemon died in the middle of runs again in the front: failing it would make
// containerd keep the task's bundle, and refuse the id, for good.
func TestDaemonGoneMidDeleteLeavesItToTheFront(t *testing.T) {
	sock := daemon(t, func(*proc.Conn, *proc.Call, *proc.Remote) {})
	var stderr bytes.Buffer
	if _, answered, _ := call(sock, []string{"-id", "c1", "delete"}, "", nil, strings.NewReader(""), io.Discard, &stderr); answered || stderr.Len() > 0 {
		t.Fatalf("call: answered %v, stderr %q; want the delete left to the front, silently", answered, stderr.String())
	}
}

func TestCallTooLargeIsLeftToTheFrontWithItsStdin(t *testing.T) {
	sock := daemon(t, func(*proc.Conn, *proc.Call, *proc.Remote) {
		t.Error("the daemon got a call that does not fit in a message")
	})
	huge := strings.Repeat("x", 100<<10)
	_, answered, read := call(sock, []string{"-id", huge, "start"}, "", nil, strings.NewReader("options"), io.Discard, io.Discard)
	if answered || string(read) != "options" {
		t.Fatalf("answered %v, read %q; want the call left to the front with the stdin it read", answered, read)
	}
}

func TestOnlyStartAndInfoReadStdin(t *testing.T) {
	for args, want := range map[string]bool{
		"-namespace k8s.io -address /a -id c1 start": true,
		"-info": true,
		"-namespace k8s.io -address /a -id c1 -bundle /b delete": false,
		"-v": false,
	} {
		if got := readsStdin(strings.Fields(args)); got != want {
			t.Errorf("readsStdin(%q) = %v, want %v", args, got, want)
		}
	}
}

// Without a daemon, Run runs `triage-shimd run ARGS` as a child, in the call's directory,
// with its stdin, and returns its exit code.
func TestRunWithoutDaemonRunsTheCallAsAChild(t *testing.T) {
	bin := t.TempDir()
	daemon := filepath.Join(bin, DaemonBinary)
	script := "#!/bin/sh\necho \"$* in $(pwd)\"; cat; echo refused >&2; exit 3\n"
	if err := os.WriteFile(daemon, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-address", filepath.Join(t.TempDir(), "no-containerd.sock"), "-id", "c1", "start"}
	code := Run(daemon, args, dir, os.Environ(), []byte("options"), &stdout, &stderr, nil)
	if code != 3 || stderr.String() != "refused\n" {
		t.Errorf("Run: exit %d, stderr %q; want the child's 3 and refused", code, stderr.String())
	}
	if want := "run " + strings.Join(args, " ") + " in " + dir + "\noptions"; stdout.String() != want {
		t.Errorf("Run: stdout %q, want %q", stdout.String(), want)
	}
}

// triage-shimd's own errors land in its log, which stops growing at maxDaemonLog.
func TestStartDaemonLogsItsErrors(t *testing.T) {
	daemon := filepath.Join(t.TempDir(), DaemonBinary)
	if err := os.WriteFile(daemon, []byte("#!/bin/sh\necho \"cannot serve on $3\" >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "triage-shimd.log")
	read := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	startDaemon(daemon, "/run/x.sock", "/run/containerd.sock", logPath)
	waitLog := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if read() == want {
				return
			}
		}
		t.Fatalf("daemon log %q, want %q", read(), want)
	}
	waitLog("cannot serve on /run/x.sock\n")

	full := strings.Repeat("x", maxDaemonLog)
	if err := os.WriteFile(logPath, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(daemon, "/run/y.sock", "/run/containerd.sock", logPath)
	time.Sleep(200 * time.Millisecond)
	if read() != full {
		t.Errorf("a full daemon log grew to %d bytes", len(read()))
	}
}
