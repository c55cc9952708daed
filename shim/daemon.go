package shim

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/triage-runtime/triage/shim/front"
	"github.com/triage-runtime/triage/shim/proc"
)

// idleTimeout: a daemon that has served no call for this long exits.
const idleTimeout = 5 * time.Minute

// memoryLimit is where triage-shimd, which runs without the garbage
// collector's pacing, collects. A start allocates a few hundred KiB:
// collecting at every few would only add pauses (a classify's p99 at 100
// rules: 35-42 µs without, 97-123 µs with); the live heap is a few MiB.
const memoryLimit = 32 << 20

// Main is triage-shimd, installed next to containerd-shim-triage-v2, which
// starts it:
//
//	triage-shimd run SHIM-ARGS...      runs one shim call in this process
//	triage-shimd serve -socket PATH -containerd-pid PID -address ADDRESS
//	                                   serves the calls of containerd PID
//	                                   until it exits, or idleTimeout
func Main(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "run" {
		return runHere(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintf(os.Stderr, "usage: %s run SHIM-ARGS... | serve -socket PATH -containerd-pid PID [-address ADDRESS] (started by containerd-shim-triage-v2)\n", front.DaemonBinary)
		return 2
	}
	fs := flag.NewFlagSet(front.DaemonBinary+" serve", flag.ContinueOnError)
	sock := fs.String("socket", "", "socket to serve on")
	pid := fs.Int("containerd-pid", 0, "containerd's pid: exit with it")
	fs.String("address", "", "containerd's address (names the daemon in process listings)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *sock == "" || *pid <= 0 {
		fmt.Fprintf(os.Stderr, "%s serve: -socket and -containerd-pid are required\n", front.DaemonBinary)
		return 2
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(memoryLimit)
	if err := serveCalls(ctx, *sock, *pid, idleTimeout); err != nil {
		// stderr is front.DaemonLog.
		fmt.Fprintf(os.Stderr, "%s %s (pid %d): %v\n", time.Now().UTC().Format(time.RFC3339), front.DaemonBinary, os.Getpid(), err)
		return 1
	}
	return 0
}

// runHere runs one call in this process, as containerd ran it.
func runHere(ctx context.Context, args []string) int {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(memoryLimit)
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-triage-v2: %v\n", err)
		return 1
	}
	return Run(ctx, Call{Args: args, Dir: wd, Env: os.Environ(), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Procs: proc.Local{}})
}

// serveCalls serves on sock until containerd (pid) exits or no call came
// for idle. When another daemon already serves sock, it returns at once.
func serveCalls(ctx context.Context, sock string, pid int, idle time.Duration) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("watch containerd (pid %d): %w", pid, err)
	}
	defer unix.Close(pidfd)
	l, existing, err := listenSocket("unixpacket", sock)
	if err != nil || existing {
		return err
	}
	own, _ := os.Stat(sock)
	defer func() {
		// A daemon started since may own the path: remove it only if ours.
		if cur, err := os.Stat(sock); err == nil && own != nil && os.SameFile(own, cur) {
			os.Remove(sock)
		}
	}()
	containerdGone := make(chan struct{})
	go func() {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				close(containerdGone)
				return
			}
		}
	}()
	conns := make(chan *net.UnixConn)
	var acceptErr error // set before conns closes
	go func() {
		defer close(conns)
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				acceptErr = err
				return
			}
			conns <- c
		}
	}()
	var calls sync.WaitGroup
	defer calls.Wait()
	stop := make(chan struct{})
	defer close(stop)
	defer func() {
		// Connections accepted but not served: their fronts run the call
		// themselves, at once rather than after the greeting's timeout.
		l.Close()
		for c := range conns {
			c.Close()
		}
	}()
	active, ended := 0, make(chan struct{})
	timer := time.NewTimer(idle)
	for {
		select {
		case c, ok := <-conns:
			if !ok {
				return fmt.Errorf("accept on %s: %w", sock, acceptErr)
			}
			active++
			calls.Add(1)
			go func() {
				defer calls.Done()
				serveCall(ctx, proc.NewConn(c))
				select {
				case ended <- struct{}{}:
				case <-stop:
				}
			}()
		case <-ended:
			if active--; active == 0 {
				timer.Reset(idle)
			}
		case <-timer.C:
			if active == 0 {
				return nil
			}
		case <-containerdGone:
			return nil
		}
	}
}

// serveCall runs the call of one front.
func serveCall(ctx context.Context, c *proc.Conn) {
	defer c.Close()
	if c.Send(proc.Msg{Hello: &proc.Hello{Protocol: proc.Protocol}}) != nil {
		return
	}
	m, files, err := c.Recv()
	for _, f := range files {
		f.Close()
	}
	if err != nil || m.Call == nil {
		return
	}
	remote := proc.NewRemote(c)
	go remote.Receive()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-remote.Gone():
			cancel()
		case <-ctx.Done():
		}
	}()
	var stdout, stderr bytes.Buffer
	code := runGuarded(ctx, Call{Args: m.Call.Args, Dir: m.Call.Dir, Env: m.Call.Env, Stdin: bytes.NewReader(m.Call.Stdin),
		Stdout: &stdout, Stderr: &stderr, Procs: remote})
	c.Send(proc.Msg{Done: &proc.Done{Code: code, Stdout: stdout.Bytes(), Stderr: truncate(stderr.Bytes())}})
}

// runGuarded is Run, with a panic turned into a failed call.
func runGuarded(ctx context.Context, c Call) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(c.Stderr, "containerd-shim-triage-v2: internal error: %v\n%s", r, debug.Stack())
			code = 1
		}
	}()
	return Run(ctx, c)
}

func truncate(b []byte) []byte {
	if len(b) <= proc.MaxOutput {
		return b
	}
	return append(b[:proc.MaxOutput:proc.MaxOutput], "… (truncated)"...)
}
