package delegate

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// serviceName maps a task API version to its ttrpc service. The v2 and v3
// protos are wire-identical (only the package differs), so one set of Go
// messages serves both: Triage talks to each delegate in the version it
// reported, and runc 2.x, which serves only v3, works behind containerd 1.6.
var serviceName = map[int]string{
	2: "containerd.task.v2.Task",
	3: "containerd.task.v3.Task",
}

// Client is a task API client for one delegate shim.
type Client struct {
	conn    *ttrpc.Client
	service string
}

var _ taskv2.TTRPCTaskService = (*Client)(nil)

// Dial connects to the delegate at address (unix://path, a plain path, or an
// abstract socket name as containerd 1.6 treats it) and speaks task API
// version. onClose runs once when the connection ends for any reason.
func Dial(ctx context.Context, address string, version int, onClose func()) (*Client, error) {
	conn, service, err := DialConn(ctx, address, version)
	if err != nil {
		return nil, err
	}
	return &Client{conn: ttrpc.NewClient(conn, ttrpc.WithOnClose(onClose)), service: service}, nil
}

// DialConn connects to the delegate at address, as Dial, for a caller that
// speaks ttrpc itself, and names the ttrpc service of task API version.
func DialConn(ctx context.Context, address string, version int) (conn net.Conn, service string, err error) {
	service, ok := serviceName[version]
	if !ok {
		return nil, "", fmt.Errorf("task API version %d is not supported", version)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err = d.DialContext(ctx, "unix", socketPath(address))
	if err != nil {
		return nil, "", fmt.Errorf("dial delegate %s: %w", address, err)
	}
	return conn, service, nil
}

// socketPath turns a shim address into a dialable unix path. As in
// containerd, "unix://" names a file; anything else is an abstract socket.
func socketPath(address string) string {
	if p, ok := strings.CutPrefix(address, "unix://"); ok {
		return p
	}
	if strings.HasPrefix(address, "/") {
		return address
	}
	return "\x00" + address
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

func call[Resp any](ctx context.Context, c *Client, method string, req any) (*Resp, error) {
	var resp Resp
	if err := c.conn.Call(ctx, c.service, method, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (c *Client) State(ctx context.Context, r *taskv2.StateRequest) (*taskv2.StateResponse, error) {
	return call[taskv2.StateResponse](ctx, c, "State", r)
}

func (c *Client) Create(ctx context.Context, r *taskv2.CreateTaskRequest) (*taskv2.CreateTaskResponse, error) {
	return call[taskv2.CreateTaskResponse](ctx, c, "Create", r)
}

func (c *Client) Start(ctx context.Context, r *taskv2.StartRequest) (*taskv2.StartResponse, error) {
	return call[taskv2.StartResponse](ctx, c, "Start", r)
}

func (c *Client) Delete(ctx context.Context, r *taskv2.DeleteRequest) (*taskv2.DeleteResponse, error) {
	return call[taskv2.DeleteResponse](ctx, c, "Delete", r)
}

func (c *Client) Pids(ctx context.Context, r *taskv2.PidsRequest) (*taskv2.PidsResponse, error) {
	return call[taskv2.PidsResponse](ctx, c, "Pids", r)
}

func (c *Client) Pause(ctx context.Context, r *taskv2.PauseRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Pause", r)
}

func (c *Client) Resume(ctx context.Context, r *taskv2.ResumeRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Resume", r)
}

func (c *Client) Checkpoint(ctx context.Context, r *taskv2.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Checkpoint", r)
}

func (c *Client) Kill(ctx context.Context, r *taskv2.KillRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Kill", r)
}

func (c *Client) Exec(ctx context.Context, r *taskv2.ExecProcessRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Exec", r)
}

func (c *Client) ResizePty(ctx context.Context, r *taskv2.ResizePtyRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "ResizePty", r)
}

func (c *Client) CloseIO(ctx context.Context, r *taskv2.CloseIORequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "CloseIO", r)
}

func (c *Client) Update(ctx context.Context, r *taskv2.UpdateTaskRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Update", r)
}

func (c *Client) Wait(ctx context.Context, r *taskv2.WaitRequest) (*taskv2.WaitResponse, error) {
	return call[taskv2.WaitResponse](ctx, c, "Wait", r)
}

func (c *Client) Stats(ctx context.Context, r *taskv2.StatsRequest) (*taskv2.StatsResponse, error) {
	return call[taskv2.StatsResponse](ctx, c, "Stats", r)
}

func (c *Client) Connect(ctx context.Context, r *taskv2.ConnectRequest) (*taskv2.ConnectResponse, error) {
	return call[taskv2.ConnectResponse](ctx, c, "Connect", r)
}

func (c *Client) Shutdown(ctx context.Context, r *taskv2.ShutdownRequest) (*emptypb.Empty, error) {
	return call[emptypb.Empty](ctx, c, "Shutdown", r)
}

// Reachable tells whether something accepts connections at a delegate
// address.
func Reachable(address string) bool {
	c, err := net.DialTimeout("unix", socketPath(address), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// RemoveStaleSocket removes the socket file of a delegate that is exiting,
// once nothing listens on it any more (waiting at most timeout). Shims built
// on containerd's library unlink the socket named in the bundle's ./address
// at exit; Triage keeps its own address there, so the delegate's socket is
// Triage's to clean up.
func RemoveStaleSocket(address string, timeout time.Duration) {
	p, ok := strings.CutPrefix(address, "unix://")
	if !ok {
		return
	}
	// A fine step: the pod lock waits for this (router.unlockAfterExit), and
	// an exiting runc shim stops listening within milliseconds.
	for deadline := time.Now().Add(timeout); ; time.Sleep(2 * time.Millisecond) {
		c, err := net.DialTimeout("unix", p, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			return
		}
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(p)
	}
}
