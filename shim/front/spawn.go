package front

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/triage-runtime/triage/shim/proc"
)

// spawner starts the processes the daemon asks for and reports their exits.
type spawner struct {
	c    *proc.Conn
	mu   sync.Mutex
	cmds map[int]*exec.Cmd // running
}

func (s *spawner) spawn(req proc.Spawn, files []*os.File) {
	defer closeAll(files) // the child has its own copies
	if len(files) < 3 {
		s.c.Send(proc.Msg{Spawned: &proc.Spawned{ID: req.ID, Err: fmt.Sprintf("start %s: %d descriptors passed, want stdin, stdout and stderr", req.Path, len(files))}})
		return
	}
	cmd := &exec.Cmd{Path: req.Path, Args: req.Args, Env: req.Env, Dir: req.Dir,
		Stdin: files[0], Stdout: files[1], Stderr: files[2], ExtraFiles: files[3:]}
	if req.Setpgid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		s.c.Send(proc.Msg{Spawned: &proc.Spawned{ID: req.ID, Err: err.Error()}})
		return
	}
	s.mu.Lock()
	s.cmds[req.ID] = cmd
	s.mu.Unlock()
	s.c.Send(proc.Msg{Spawned: &proc.Spawned{ID: req.ID, Pid: cmd.Process.Pid}})
	go func() {
		e := proc.Exited{ID: req.ID}
		if err := cmd.Wait(); err != nil {
			e.Err = err.Error()
		}
		s.mu.Lock()
		delete(s.cmds, req.ID)
		s.mu.Unlock()
		s.c.Send(proc.Msg{Exited: &e})
	}()
}

func (s *spawner) kill(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmd := s.cmds[id]; cmd != nil {
		cmd.Process.Kill()
	}
}

// killAll kills what still runs when the daemon is gone: without it, no
// one would finish the start they belong to.
func (s *spawner) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cmd := range s.cmds {
		cmd.Process.Kill()
	}
}
