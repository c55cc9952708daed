package proc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
)

// Protocol is the version of the messages below; a daemon that greets with
// another is not used.
const Protocol = 1

// maxMessage bounds a packet, and is the buffer each end reads into (a
// page fault per 4 KiB on its first use: this one, in every front). A call
// carries containerd's environment and the shim's stdin (runtime options, a
// few hundred bytes); an answer, the shim's output (MaxOutput).
const maxMessage = 64 << 10

// MaxOutput bounds the output an answer carries back: a start's address, a
// delete's reply, an error.
const MaxOutput = 32 << 10

// maxFiles bounds the descriptors passed with one message: stdio and the
// router's listener.
const maxFiles = 8

// ErrTooLarge: a message does not fit in a packet; nothing was sent.
var ErrTooLarge = errors.New("message too large")

// Msg is one packet; exactly one field is set.
type Msg struct {
	Hello   *Hello   `json:",omitempty"`
	Call    *Call    `json:",omitempty"`
	Spawn   *Spawn   `json:",omitempty"`
	Spawned *Spawned `json:",omitempty"`
	Exited  *Exited  `json:",omitempty"`
	Kill    *Kill    `json:",omitempty"`
	Done    *Done    `json:",omitempty"`
}

// Hello is the daemon's first message on a connection, sent before it reads
// anything: a front that gets no Hello knows the daemon did nothing for it.
type Hello struct{ Protocol int }

// Call is the front's invocation: what containerd gave it.
type Call struct {
	Args  []string
	Dir   string
	Env   []string
	Stdin []byte
}

// Spawn asks the front to start a process. Its descriptors come with the
// message: stdin, stdout, stderr, then ExtraFiles (fd 3 on).
type Spawn struct {
	ID      int
	Path    string
	Args    []string
	Env     []string
	Dir     string
	Setpgid bool
}

// Spawned answers Spawn: the pid, or why it could not start.
type Spawned struct {
	ID  int
	Pid int
	Err string `json:",omitempty"`
}

// Exited reports that a spawned process ended ("" for exit status 0).
type Exited struct {
	ID  int
	Err string `json:",omitempty"`
}

// Kill asks the front to kill a spawned process.
type Kill struct{ ID int }

// Done ends the call: what the front prints and its exit code.
type Done struct {
	Code           int
	Stdout, Stderr []byte
}

// Conn is one front–daemon connection.
type Conn struct {
	c   *net.UnixConn
	mu  sync.Mutex // one writer at a time
	buf []byte
	oob []byte
}

// NewConn wraps a SOCK_SEQPACKET connection.
func NewConn(c *net.UnixConn) *Conn {
	return &Conn{c: c, buf: make([]byte, maxMessage), oob: make([]byte, syscall.CmsgSpace(maxFiles*4))}
}

// Dial connects to the daemon's socket.
func Dial(path string) (*Conn, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

// Raw is the underlying socket (deadlines, close).
func (c *Conn) Raw() *net.UnixConn { return c.c }

func (c *Conn) Close() error { return c.c.Close() }

// Send writes m with files.
func (c *Conn) Send(m Msg, files ...*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(b), maxMessage)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = syscall.UnixRights(fds...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _, err = c.c.WriteMsgUnix(b, oob, nil)
	runtime.KeepAlive(files)
	return err
}

// Recv reads one message and the files that came with it (close-on-exec).
// Only one goroutine may call it.
func (c *Conn) Recv() (Msg, []*os.File, error) {
	var m Msg
	n, oobn, flags, _, err := c.c.ReadMsgUnix(c.buf, c.oob)
	if err != nil {
		return m, nil, err
	}
	files, ferr := parseFiles(c.oob[:oobn])
	switch {
	case ferr != nil:
		return m, nil, ferr
	case n == 0 && oobn == 0:
		return m, nil, io.EOF
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		closeFiles(files)
		return m, nil, errors.New("message truncated")
	}
	if err := json.Unmarshal(c.buf[:n], &m); err != nil {
		closeFiles(files)
		return m, nil, fmt.Errorf("decode message: %w", err)
	}
	return m, files, nil
}

func parseFiles(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, cm := range msgs {
		fds, err := syscall.ParseUnixRights(&cm)
		if err != nil {
			closeFiles(files)
			return nil, err
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
