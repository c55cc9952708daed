package router

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// DaemonBinary is the router daemon's executable. It is a program of its
// own, installed next to containerd-shim-triage-v2, so that the one process
// that lives as long as the pod links only what forwarding needs (about a
// third of the shim's resident memory).
const DaemonBinary = "triage-router"

// shutdownGrace bounds how long the router waits for in-flight replies (the
// last Shutdown's) before it exits.
const shutdownGrace = 2 * time.Second

// Main is the router daemon, started by containerd-shim-triage-v2 start as
// `triage-router -namespace NS -address CONTAINERD [-publish-binary BIN] [-socket-dir DIR] -id POD [-runc] [-debug]` in the bundle of the pod's first
// container, with the pod's listening socket as fd 3. It serves the task API
// until its last container is shut down: with -runc (a runc tier) it is the
// pod's shim and runs its containers itself (host.go), else it relays to the
// pod's delegate shims.
func Main(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet(DaemonBinary, flag.ContinueOnError)
	ns := fs.String("namespace", "", "containerd namespace of the pod")
	address := fs.String("address", "", "containerd address")
	publish := fs.String("publish-binary", "", "containerd binary, as containerd passes it to shims")
	socketDir := fs.String("socket-dir", "", "containerd's socket_dir for shims (2.4+), passed on to the starts the router runs")
	pod := fs.String("id", "", "pod (group) served")
	runc := fs.Bool("runc", false, "host the pod's runc containers in this process")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	serve := serveHosted
	if !*runc {
		// A relay only waits on sockets: one P keeps a forwarded call on one
		// thread instead of handing it between threads (State through the
		// router: +111 µs over direct, against +160 µs with GOMAXPROCS=2).
		runtime.GOMAXPROCS(1)
		serve = serveRelay
	}
	SetupLogging(*debug)
	ctx = log.WithLogger(ctx, log.L.WithFields(log.Fields{"namespace": *ns, "pod": *pod}))
	j, err := newJoiner(*ns, *address, *publish, *socketDir, *debug)
	if err != nil {
		log.G(ctx).WithError(err).Error("router")
		return 1
	}
	if err := serve(ctx, j, *pod); err != nil {
		log.G(ctx).WithError(err).Error("router")
		return 1
	}
	return 0
}

func serveRelay(ctx context.Context, j joiner, pod string) error {
	l, err := net.FileListener(os.NewFile(3, "router-socket"))
	if err != nil {
		return fmt.Errorf("router listener: %w", err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	var r *relay
	serveOn := func(l net.Listener) {
		if err := r.serve(l); err != nil {
			log.G(ctx).WithError(err).Error("router serve")
		}
	}
	sock := newSocketFile(l.Addr().String())
	svc := New(func() { sock.rebind(ctx, serveOn) })
	svc.join = j.join
	svc.pod = &podGuard{address: j.address, namespace: j.namespace, id: pod, sock: sock}
	taskv2.RegisterTTRPCTaskService(srv, svc)
	r = newRelay(ctx, svc, srv)
	go warmMessages()
	svc.awaitFirst(ctx)
	go serveOn(l)
	<-svc.Done()
	sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	r.shutdown(sctx)
	svc.WaitDelegates(shutdownGrace)
	sock.release()
	return nil
}

// socketFile is the router's socket file while the router serves it.
//
// Shims built on containerd's library unlink the socket named in the
// bundle's ./address when they exit, and on containerd 1.x that file must
// name the router. A delegate that served one container of a pod can thus
// remove the router's socket, which rebind binds again. A delegate also
// exits as its pod ends, after the pod's last `delete` removed the socket:
// once the router is leaving, nothing is bound again, or the socket would
// outlive it.
type socketFile struct {
	path string

	mu sync.Mutex
	// own is the file the router bound; guarded by mu.
	own os.FileInfo
	// released is set once the router stopped serving; guarded by mu.
	released bool
}

func newSocketFile(path string) *socketFile {
	own, _ := os.Stat(path)
	return &socketFile{path: path, own: own}
}

// rebind binds the socket again when it was removed, and serves it.
func (s *socketFile) rebind(ctx context.Context, serve func(net.Listener)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	if _, err := os.Stat(s.path); !errors.Is(err, os.ErrNotExist) {
		return
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		log.G(ctx).WithError(err).Error("router socket was removed and cannot be bound again")
		return
	}
	// Closing it must not unlink the path, which may be another
	// router's by then: release removes the socket if it is this one.
	l.SetUnlinkOnClose(false)
	s.own, _ = os.Stat(s.path)
	go serve(l)
}

// taken tells whether the router no longer serves its socket path: it was
// released, or another router bound it. A missing file is not taken: a
// delegate removed it, and rebind binds it again.
func (s *socketFile) taken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := os.Stat(s.path)
	return s.released || err == nil && (s.own == nil || !os.SameFile(s.own, cur))
}

// release removes the socket as the router leaves, if it is still the one
// the router bound: a new router may own the path already (the pod was
// emptied and started again).
func (s *socketFile) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	if cur, err := os.Stat(s.path); err == nil && s.own != nil && os.SameFile(s.own, cur) {
		os.Remove(s.path)
	}
}

// SetupLogging sends the process's logs to the bundle's "log" fifo (in the
// working directory), which containerd copies into its own log; without it
// they are dropped. Never stderr: containerd reads a shim's start reply from
// its combined output.
func SetupLogging(debug bool) {
	configure(logrus.StandardLogger(), ".", debug)
}

// BundleLogger is a logger like SetupLogging's for one call in bundle dir,
// in a process that serves many; close releases the fifo.
func BundleLogger(dir string, debug bool) (l *logrus.Logger, close func()) {
	l = logrus.New()
	return l, configure(l, dir, debug)
}

func configure(l *logrus.Logger, dir string, debug bool) (close func()) {
	l.SetFormatter(&logrus.TextFormatter{TimestampFormat: log.RFC3339NanoFixed, FullTimestamp: true})
	if debug {
		l.SetLevel(logrus.DebugLevel)
	}
	fifo, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		l.SetOutput(io.Discard)
		return func() {}
	}
	l.SetOutput(fifo)
	return func() { fifo.Close() }
}

// warmMessages initialises the task API's message types, which protobuf
// does on their first use. The router starts while its delegate does: done
// then, that is off the path of the pod's first calls (about 0.5 ms here).
func warmMessages() {
	for _, m := range []proto.Message{
		&taskv2.CreateTaskRequest{}, &taskv2.CreateTaskResponse{}, &taskv2.StartRequest{}, &taskv2.StartResponse{},
		&taskv2.WaitRequest{}, &taskv2.WaitResponse{}, &taskv2.DeleteRequest{}, &taskv2.DeleteResponse{},
		&taskv2.StateRequest{}, &taskv2.StateResponse{}, &taskv2.ConnectRequest{}, &taskv2.ConnectResponse{},
		&taskv2.KillRequest{}, &taskv2.ShutdownRequest{}, &emptypb.Empty{},
	} {
		b, _ := proto.Marshal(m)
		proto.Unmarshal(b, m)
	}
}
