// Package front is containerd-shim-triage-v2: the small program containerd
// runs for every shim call (start, delete, -info). It hands the call to
// triage-shimd, the node daemon that holds the compiled policy and an open
// connection to containerd, and starts the processes the daemon asks for as
// its own children (package proc). When no daemon answers, it starts one
// for the calls to come and becomes `triage-shimd run` for this call, which
// does the same work in this process.
//
// It links only the standard library: containerd waits for it on every
// container start, and a Go program's start-up grows with what it links.
package front

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/triage-runtime/triage/shim/proc"
)

// DaemonBinary is the node daemon, installed next to this program.
const DaemonBinary = "triage-shimd"

// SocketDir holds Triage's sockets (the routers' too).
const SocketDir = "/run/triage/s"

// Exit codes of a shim call besides 0: the kind of failure, kept for a caller that runs a
// call itself (the router, for a container that joins its pod), which turns it back into
// an error code.
const (
	// ExitFailed: any other failure.
	ExitFailed = 1
	// ExitDenied: the policy, or the tier's hardening, refused the workload.
	ExitDenied = 3
	// ExitUnrunnable: the workload's tier cannot run on this node (its delegate is
	// missing, or what it needs).
	ExitUnrunnable = 4
	// ExitLost: triage-shimd ended the call without an answer (it died).
	ExitLost = 5
)

// DaemonEnv, set to "off" in containerd's environment, runs every call in the front's own
// process (`triage-shimd run`), never through the daemon.
const DaemonEnv = "TRIAGE_SHIMD"

// daemonOff tells whether env turns the daemon off (see DaemonEnv).
func daemonOff(env []string) bool {
	return slices.Contains(env, DaemonEnv+"=off")
}

// helloTimeout bounds the wait for a daemon's greeting; without one the call
// runs in this process.
const helloTimeout = time.Second

// Main runs one shim call and returns the exit code.
func Main(args []string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-triage-v2: %v\n", err)
		return 1
	}
	daemon := filepath.Join(filepath.Dir(self), DaemonBinary)
	if address := flagValue(args, "address"); address != "" && !daemonOff(os.Environ()) {
		if sock, err := socketPath(address, daemon); err == nil {
			code, answered, read := call(sock, args, "", os.Environ(), os.Stdin, os.Stdout, os.Stderr)
			if answered {
				return code
			}
			startDaemon(daemon, sock, address, DaemonLog)
			if read != nil {
				if err := refillStdin(read); err != nil {
					fmt.Fprintf(os.Stderr, "containerd-shim-triage-v2: %v\n", err)
					return 1
				}
			}
		}
	}
	err = syscall.Exec(daemon, append([]string{daemon, "run"}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "containerd-shim-triage-v2: run %s: %v: install %s next to %s\n", daemon, err, DaemonBinary, self)
	return 1
}

// Run runs one shim call for a program that containerd did not start for
// it: the router, for a container that joins its pod without a `start`
// (task API v3). The call goes to the daemon as in Main, else to
// `triage-shimd run` as a child; what the call starts are the caller's
// children. daemon is triage-shimd's path; dir is the call's working
// directory (the bundle); run runs the child and returns its exit code (nil:
// as exec.Cmd.Run would, for a process that reaps its own children).
func Run(daemon string, args []string, dir string, env []string, stdin []byte, stdout, stderr io.Writer, run func(*exec.Cmd) (int, error)) int {
	if sock, err := socketPath(flagValue(args, "address"), daemon); err == nil && !daemonOff(env) {
		if code, answered, _ := call(sock, args, dir, env, bytes.NewReader(stdin), stdout, stderr); answered {
			return code
		}
	}
	cmd := exec.Command(daemon, append([]string{"run"}, args...)...)
	cmd.Dir, cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, env, bytes.NewReader(stdin), stdout, stderr
	if run == nil {
		run = runChild
	}
	code, err := run(cmd)
	if err != nil {
		fmt.Fprintf(stderr, "containerd-shim-triage-v2: run %s: %v\n", daemon, err)
		return 1
	}
	return code
}

// runChild runs cmd and returns its exit code.
func runChild(cmd *exec.Cmd) (int, error) {
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// socketPath is the daemon's socket for containerd at address. It names the
// daemon binary's inode and modification time: a daemon replaced on disk is
// not asked again, the new one is started.
func socketPath(address, daemon string) (string, error) {
	fi, err := os.Stat(daemon)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("stat %s: no inode", daemon)
	}
	id := fmt.Sprintf("%s#triage-shimd#%d:%d:%d:%d", address, st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano())
	h := sha256.Sum256([]byte(id))
	return filepath.Join(SocketDir, "d-"+hex.EncodeToString(h[:])), nil
}

// ShimFlags are the flags containerd passes every shim call but -id, which
// the router daemon takes too: -namespace, -address, -publish-binary (when
// set) and -debug (when set).
func ShimFlags(namespace, address, publishBinary string, debug bool) []string {
	args := []string{"-namespace", namespace, "-address", address}
	if publishBinary != "" {
		args = append(args, "-publish-binary", publishBinary)
	}
	if debug {
		args = append(args, "-debug")
	}
	return args
}

// flagValue finds -name VALUE or -name=VALUE (one or two dashes) in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// readsStdin tells whether the call reads stdin: `start` (runtime options
// or BootstrapParams) and `-info` (runtime options). Other calls leave it
// alone, as runc's shim does: a caller may pass one it never closes.
func readsStdin(args []string) bool {
	if len(args) > 0 && args[len(args)-1] == "start" {
		return true
	}
	return slices.ContainsFunc(args, func(a string) bool { return a == "-info" || a == "--info" })
}

// idempotent tells whether the call may run again after a daemon died in
// its middle: `delete` finds done what the daemon did, and does the rest.
// Failing it instead would make containerd keep the task's bundle for good.
func idempotent(args []string) bool {
	return len(args) > 0 && args[len(args)-1] == "delete"
}

// DaemonLog gets triage-shimd's own errors, such as a socket it cannot
// serve on (a call's logs go to its bundle's log, as a shim's do). It grows
// by a line per failed daemon at most, and is not written past
// maxDaemonLog.
const DaemonLog = "/run/triage/triage-shimd.log"

const maxDaemonLog = 1 << 20

// startDaemon starts the node daemon in the background for the calls to
// come. It lives in its own session with no stdin or stdout (containerd
// reads this call's output until every copy of the pipes is closed), its
// stderr appended to logPath, and exits with the containerd that ran this
// program, or when idle.
func startDaemon(daemon, sock, address, logPath string) {
	cmd := exec.Command(daemon, "serve", "-socket", sock, "-containerd-pid", fmt.Sprint(os.Getppid()), "-address", address)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if fi, err := os.Stat(logPath); err != nil || fi.Size() < maxDaemonLog {
		if f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			defer f.Close() // the daemon has its own copy
			cmd.Stderr = f
		}
	}
	if cmd.Start() == nil {
		cmd.Process.Release()
	}
}

// call hands the call to the daemon at sock, to run in dir (this process's
// working directory when empty) with env. answered is false when the call
// is to run in this process instead: no daemon greeted (stdin is unread),
// the call does not fit in a message (read is what was read of stdin), or
// the daemon died in the middle of a call that may run again (idempotent).
func call(sock string, args []string, dir string, env []string, stdin io.Reader, stdout, stderr io.Writer) (code int, answered bool, read []byte) {
	c, err := proc.Dial(sock)
	if err != nil {
		return 0, false, nil
	}
	defer c.Close()
	c.Raw().SetReadDeadline(time.Now().Add(helloTimeout))
	m, files, err := c.Recv()
	closeAll(files)
	if err != nil || m.Hello == nil || m.Hello.Protocol != proc.Protocol {
		return 0, false, nil
	}
	c.Raw().SetReadDeadline(time.Time{})
	fail := func(err error) int {
		fmt.Fprintf(stderr, "containerd-shim-triage-v2: %v\n", err)
		return ExitFailed
	}
	var in []byte
	if readsStdin(args) {
		if in, err = io.ReadAll(stdin); err != nil {
			return fail(fmt.Errorf("read stdin: %w", err)), true, nil
		}
	}
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return fail(err), true, nil
		}
	}
	if err := c.Send(proc.Msg{Call: &proc.Call{Args: args, Dir: dir, Env: env, Stdin: in}}); err != nil {
		if errors.Is(err, proc.ErrTooLarge) {
			return 0, false, in
		}
		return fail(fmt.Errorf("hand the call to %s: %w", DaemonBinary, err)), true, nil
	}
	s := spawner{c: c, kids: map[int]*child{}}
	for {
		m, files, err := c.Recv()
		if err != nil {
			s.killAll()
			if idempotent(args) {
				return 0, false, nil
			}
			fail(fmt.Errorf("%s ended the call without an answer (%v): the workload was not started; see its log in the bundle", DaemonBinary, err))
			return ExitLost, true, nil
		}
		switch {
		case m.Spawn != nil:
			s.spawn(*m.Spawn, files)
		case m.Kill != nil:
			closeAll(files)
			s.kill(m.Kill.ID)
		case m.Done != nil:
			closeAll(files)
			stdout.Write(m.Done.Stdout)
			stderr.Write(m.Done.Stderr)
			return m.Done.Code, true, nil
		default:
			closeAll(files)
		}
	}
}

// refillStdin makes what was read of stdin this process's stdin again, for
// the program it is about to become.
func refillStdin(read []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	// A pipe holds 64 KiB; runtime options are a few hundred bytes.
	_, err = w.Write(read)
	w.Close()
	if err != nil {
		return fmt.Errorf("pass stdin on: %w", err)
	}
	return syscall.Dup3(int(r.Fd()), 0, 0)
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
