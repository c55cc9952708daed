package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// ErrFrontGone: the front closed the connection (containerd killed it, or
// it died) before the process's fate was known.
var ErrFrontGone = errors.New("the shim process containerd started is gone")

// Remote starts commands through the front on the other end of a
// connection. Its Receive loop must run for replies to arrive.
type Remote struct {
	c       *Conn
	mu      sync.Mutex
	next    int
	spawned map[int]chan Spawned
	exited  map[int]chan Exited
	gone    chan struct{}
}

// NewRemote starts commands through c.
func NewRemote(c *Conn) *Remote {
	return &Remote{c: c, spawned: map[int]chan Spawned{}, exited: map[int]chan Exited{}, gone: make(chan struct{})}
}

// Receive dispatches the front's messages until the connection ends, then
// closes Gone.
func (r *Remote) Receive() {
	defer close(r.gone)
	for {
		m, files, err := r.c.Recv()
		closeFiles(files)
		if err != nil {
			return
		}
		r.mu.Lock()
		switch {
		case m.Spawned != nil:
			if ch := r.spawned[m.Spawned.ID]; ch != nil {
				ch <- *m.Spawned
			}
		case m.Exited != nil:
			if ch := r.exited[m.Exited.ID]; ch != nil {
				ch <- *m.Exited
			}
		}
		r.mu.Unlock()
	}
}

// Gone is closed when the front has gone.
func (r *Remote) Gone() <-chan struct{} { return r.gone }

func (r *Remote) Start(cmd *exec.Cmd) (Process, error) {
	files, null, err := stdio(cmd)
	if err != nil {
		return nil, err
	}
	if null != nil {
		defer null.Close()
	}
	r.mu.Lock()
	r.next++
	id := r.next
	spawned, exited := make(chan Spawned, 1), make(chan Exited, 1)
	r.spawned[id], r.exited[id] = spawned, exited
	r.mu.Unlock()
	req := Spawn{ID: id, Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir}
	if cmd.SysProcAttr != nil {
		req.Setpgid = cmd.SysProcAttr.Setpgid
	}
	if err := r.c.Send(Msg{Spawn: &req}, files...); err != nil {
		return nil, fmt.Errorf("ask the shim process to start %s: %w", cmd.Path, err)
	}
	select {
	case s := <-spawned:
		if s.Err != "" {
			return nil, errors.New(s.Err)
		}
		return &remoteProcess{r: r, id: id, pid: s.Pid, exited: exited}, nil
	case <-r.gone:
		return nil, fmt.Errorf("start %s: %w", cmd.Path, ErrFrontGone)
	}
}

// stdio lists what Spawn passes: stdin, stdout, stderr, then the extra
// files. A nil stdio stream is null, /dev/null, for the caller to close.
func stdio(cmd *exec.Cmd) (files []*os.File, null *os.File, err error) {
	for _, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		switch f := s.(type) {
		case *os.File:
			files = append(files, f)
		case nil:
			if null == nil {
				if null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
					return nil, nil, err
				}
			}
			files = append(files, null)
		default:
			if null != nil {
				null.Close()
			}
			return nil, nil, fmt.Errorf("start %s: stdio must be files to pass them on, not %T", cmd.Path, s)
		}
	}
	return append(files, cmd.ExtraFiles...), null, nil
}

type remoteProcess struct {
	r      *Remote
	id     int
	pid    int
	exited chan Exited
}

func (p *remoteProcess) Pid() int { return p.pid }

func (p *remoteProcess) Wait() error {
	select {
	case e := <-p.exited:
		if e.Err != "" {
			return errors.New(e.Err)
		}
		return nil
	case <-p.r.gone:
		return fmt.Errorf("wait for pid %d: %w", p.pid, ErrFrontGone)
	}
}

func (p *remoteProcess) Kill() error {
	return p.r.c.Send(Msg{Kill: &Kill{ID: p.id}})
}
