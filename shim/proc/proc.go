// Package proc starts the processes a shim call needs (a delegate's `start`,
// a pod's router) as children of the process containerd ran for the call.
//
// A call runs either in that process (Local), or in triage-shimd, the node
// daemon that keeps the policy compiled and containerd's connection open; its
// processes are then started by containerd-shim-triage-v2, the small front
// containerd ran, on the daemon's request (Remote). Either way they are
// children of containerd's child, as without Triage: shims read their parent
// at start (runc's takes its parent's OOM score), and they inherit its cgroup.
//
// The front and the daemon talk over a SOCK_SEQPACKET unix socket: one JSON
// message per packet, file descriptors passed with it (SCM_RIGHTS).
package proc

import (
	"os/exec"
)

// A Starter starts commands for a shim call.
type Starter interface {
	// Start starts cmd as Cmd.Start does. Stdin, Stdout and Stderr must be
	// nil or *os.File; ExtraFiles and SysProcAttr.Setpgid are honoured, and
	// the context of exec.CommandContext is not.
	Start(cmd *exec.Cmd) (Process, error)
}

// A Process is a started command.
type Process interface {
	Pid() int
	// Wait waits for it to exit: nil for exit status 0.
	Wait() error
	Kill() error
}

// Local starts commands in this process.
type Local struct{}

func (Local) Start(cmd *exec.Cmd) (Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return localProcess{cmd}, nil
}

type localProcess struct{ cmd *exec.Cmd }

func (p localProcess) Pid() int    { return p.cmd.Process.Pid }
func (p localProcess) Wait() error { return p.cmd.Wait() }
func (p localProcess) Kill() error { return p.cmd.Process.Kill() }
