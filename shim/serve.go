package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"

	"github.com/triage-runtime/triage/shim/router"
)

// serveAction is the hidden subcommand the router daemon runs as.
const serveAction = "serve"

// shutdownGrace bounds how long the router waits for in-flight replies (the
// last Shutdown's) before it exits.
const shutdownGrace = 2 * time.Second

// serve is the router daemon: it serves the task API on the listener passed
// as fd 3 until its last container is shut down.
func serve(ctx context.Context, f flags) error {
	setupLogging(f)
	ctx = log.WithLogger(ctx, log.L.WithField("pod", f.id))
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
	serveOn := func(l net.Listener) {
		if err := srv.Serve(ctx, l); err != nil && err != ttrpc.ErrServerClosed {
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
	svc := router.New(relisten)
	taskv2.RegisterTTRPCTaskService(srv, svc)
	go serveOn(l)
	<-svc.Done()
	sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	svc.WaitDelegates(shutdownGrace)
	// A new router may already own the path (the pod was emptied and
	// started again): remove the socket only if it is still ours.
	if cur, err := os.Stat(path); err == nil && own != nil && os.SameFile(own, cur) {
		os.Remove(path)
	}
	return nil
}

// setupLogging sends the daemon's logs to the bundle's "log" fifo, which
// containerd copies into its own log.
func setupLogging(f flags) {
	logrus.SetFormatter(&logrus.TextFormatter{TimestampFormat: log.RFC3339NanoFixed, FullTimestamp: true})
	if f.debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	fifo, err := os.OpenFile("log", os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	logrus.SetOutput(fifo)
}
