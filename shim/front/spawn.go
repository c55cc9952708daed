package front

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/triage-runtime/triage/shim/proc"
)

// spawner starts the processes the daemon asks for and reports their exits.
//
// It forks with syscall.ForkExec, not os/exec: a process's first os/exec
// start first checks that pidfds work by forking a child that exits at once
// (os.checkPidfd), and the front is a new process for every call, so it
// would pay that fork before every delegate start containerd waits for.
type spawner struct {
	c    *proc.Conn
	mu   sync.Mutex
	kids map[int]*child // running
}

// A child is a spawned process. Its pid is only signalled while it is
// unreaped (under mu), so a kill can never reach a reused pid.
type child struct {
	pid    int
	reaped bool // guarded by spawner.mu
}

func (s *spawner) spawn(req proc.Spawn, files []*os.File) {
	defer closeAll(files) // the child has its own copies
	if len(files) < 3 {
		s.c.Send(proc.Msg{Spawned: &proc.Spawned{ID: req.ID, Err: fmt.Sprintf("start %s: %d descriptors passed, want stdin, stdout and stderr", req.Path, len(files))}})
		return
	}
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	env := req.Env
	if env == nil {
		env = os.Environ() // as exec.Cmd does
	}
	pid, err := syscall.ForkExec(req.Path, req.Args, &syscall.ProcAttr{
		Dir: req.Dir, Env: env, Files: fds, Sys: &syscall.SysProcAttr{Setpgid: req.Setpgid},
	})
	if err != nil {
		s.c.Send(proc.Msg{Spawned: &proc.Spawned{ID: req.ID, Err: (&os.PathError{Op: "fork/exec", Path: req.Path, Err: err}).Error()}})
		return
	}
	k := &child{pid: pid}
	s.mu.Lock()
	s.kids[req.ID] = k
	s.mu.Unlock()
	s.c.Send(proc.Msg{Spawned: &proc.Spawned{ID: req.ID, Pid: pid}})
	go func() {
		e := proc.Exited{ID: req.ID}
		if err := s.wait(k); err != nil {
			e.Err = err.Error()
		}
		s.mu.Lock()
		delete(s.kids, req.ID)
		s.mu.Unlock()
		s.c.Send(proc.Msg{Exited: &e})
	}()
}

// wait waits for k to exit, then reaps it; nil for exit status 0.
func (s *spawner) wait(k *child) error {
	// waitid(P_PID, WEXITED|WNOWAIT) waits without reaping: the pid stays
	// k's until reaped below, once kill can no longer pick it.
	var info [128]byte // siginfo_t
	waitid := func() syscall.Errno {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, 1 /* P_PID */, uintptr(k.pid), uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		return errno
	}
	for waitid() == syscall.EINTR {
	}
	s.mu.Lock()
	k.reaped = true
	s.mu.Unlock()
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(k.pid, &ws, 0, nil)
	for err == syscall.EINTR {
		_, err = syscall.Wait4(k.pid, &ws, 0, nil)
	}
	if err != nil {
		return err
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}

func (s *spawner) kill(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.kids[id]; k != nil && !k.reaped {
		syscall.Kill(k.pid, syscall.SIGKILL)
	}
}

// killAll kills what still runs when the daemon is gone: without it, no
// one would finish the start they belong to.
func (s *spawner) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.kids {
		if !k.reaped {
			syscall.Kill(k.pid, syscall.SIGKILL)
		}
	}
}
