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
// `triage-router -namespace NS -address CONTAINERD [-publish-binary BIN] -id POD [-debug]` in the bundle of the pod's first
// container, with the pod's listening socket as fd 3. It serves the task API
// until its last container is shut down.
func Main(ctx context.Context, args []string) int {
	// The router only waits on sockets: one P keeps a forwarded call on one
	// thread instead of handing it between threads (State through the router:
	// +111 µs over direct, against +160 µs with GOMAXPROCS=2).
	runtime.GOMAXPROCS(1)
	fs := flag.NewFlagSet(DaemonBinary, flag.ContinueOnError)
	ns := fs.String("namespace", "", "containerd namespace of the pod")
	address := fs.String("address", "", "containerd address")
	publish := fs.String("publish-binary", "", "containerd binary, as containerd passes it to shims")
	pod := fs.String("id", "", "pod (group) served")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	SetupLogging(*debug)
	ctx = log.WithLogger(ctx, log.L.WithFields(log.Fields{"namespace": *ns, "pod": *pod}))
	shimFlags := []string{"-namespace", *ns, "-address", *address}
	if *publish != "" {
		shimFlags = append(shimFlags, "-publish-binary", *publish)
	}
	if *debug {
		shimFlags = append(shimFlags, "-debug")
	}
	j, err := newJoiner(shimFlags)
	if err != nil {
		log.G(ctx).WithError(err).Error("router")
		return 1
	}
	if err := serve(ctx, j); err != nil {
		log.G(ctx).WithError(err).Error("router")
		return 1
	}
	return 0
}

func serve(ctx context.Context, j joiner) error {
	l, err := net.FileListener(os.NewFile(3, "router-socket"))
	if err != nil {
		return fmt.Errorf("router listener: %w", err)
	}
	path := l.Addr().String()
	own, _ := os.Stat(path)

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
	// Shims built on containerd's library unlink the socket named in the
	// bundle's ./address when they exit, and on containerd 1.x that file
	// must name the router. A delegate that served one container of a pod
	// can thus remove the router's socket: bind it again.
	relisten := func() {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			return
		}
		nl, err := net.Listen("unix", path)
		if err != nil {
			log.G(ctx).WithError(err).Error("router socket was removed and cannot be bound again")
			return
		}
		own, _ = os.Stat(path)
		go serveOn(nl)
	}
	svc := New(relisten)
	svc.join = j.join
	taskv2.RegisterTTRPCTaskService(srv, svc)
	r = newRelay(ctx, svc, srv)
	go warmMessages()
	go serveOn(l)
	<-svc.Done()
	sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	r.shutdown(sctx)
	svc.WaitDelegates(shutdownGrace)
	// A new router may already own the path (the pod was emptied and
	// started again): remove the socket only if it is still ours.
	if cur, err := os.Stat(path); err == nil && own != nil && os.SameFile(own, cur) {
		os.Remove(path)
	}
	return nil
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
