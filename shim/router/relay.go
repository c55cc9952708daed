package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"

	"github.com/triage-runtime/triage/shim/delegate"
)

// The ttrpc services containerd calls on the router: the task API v2, and
// v3 once start reported that version (containerd 2.4+). They are
// wire-identical; the task service is registered as v2.
const (
	taskV2 = "containerd.task.v2.Task"
	taskV3 = "containerd.task.v3.Task"
)

// relayed are the task API calls that reach the delegate unchanged. Start
// and CloseIO are relayed unless their container has a start gate.
var relayed = map[string]bool{
	"State": true, "Pids": true, "Pause": true, "Resume": true, "Checkpoint": true, "Kill": true,
	"ResizePty": true, "Wait": true, "Stats": true, "Start": true, "CloseIO": true,
}

// relay serves containerd's connections to the router. It reads their ttrpc
// frames itself: a call that only needs forwarding goes to its delegate as
// it is, over a connection of the relay's own (a wire), with only its stream
// id and, for a v3 delegate, its service name rewritten. Every other call
// goes to the Service, served by a ttrpc server in this process through a
// pipe per connection. Relayed calls skip the decode, re-encode and
// goroutine hand-offs of a ttrpc server and client: a State call through
// the router took +47 to +67 µs over a direct one here, against +84 to
// +115 µs before (bench/RESULTS.md).
type relay struct {
	svc   *Service
	inner *ttrpc.Server
	pipes *pipeListener

	mu sync.Mutex
	// listeners and conns are what the relay serves; guarded by mu.
	listeners map[net.Listener]bool
	conns     map[*client]bool
	// stopped is set by shutdown; guarded by mu.
	stopped bool
}

// client is one connection from containerd.
type client struct {
	conn net.Conn
	// mu keeps each reply frame whole: relayed replies and the inner
	// server's are written from different goroutines.
	mu sync.Mutex
	// calls counts the requests handed to the inner server whose replies
	// are not written yet; guarded by mu.
	calls int
	// served is closed once every reply of the inner server was written.
	served chan struct{}
	// gone is closed when the connection has ended.
	gone chan struct{}
}

// closeGrace is how long the router, as it ends, leaves containerd to read
// the last replies and close its connections first. A ttrpc client whose
// connection ends right after a reply may report ErrClosed for that call.
const closeGrace = 100 * time.Millisecond

func (c *client) reply(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.Write(f) // a failed write ends the connection's read loop too
}

// handOver counts a request that goes to the inner server.
func (c *client) handOver() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

// answer writes the inner server's reply f, which answers a handed-over
// request.
func (c *client) answer(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.Write(f)
	if f.kind() == typeReply && c.calls > 0 {
		c.calls--
	}
}

// answered tells whether every request handed to the inner server has its
// reply written.
func (c *client) answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls == 0
}

func newRelay(ctx context.Context, svc *Service, inner *ttrpc.Server) *relay {
	r := &relay{svc: svc, inner: inner, pipes: newPipeListener(), listeners: map[net.Listener]bool{}, conns: map[*client]bool{}}
	go func() {
		if err := inner.Serve(ctx, r.pipes); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			log.G(ctx).WithError(err).Error("router: task service")
		}
	}()
	return r
}

// serve accepts containerd's connections on l until shutdown.
func (r *relay) serve(l net.Listener) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return l.Close()
	}
	r.listeners[l] = true
	r.mu.Unlock()
	for {
		conn, err := l.Accept()
		if err != nil {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.stopped {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		c := &client{conn: conn, served: make(chan struct{}), gone: make(chan struct{})}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			conn.Close()
			return nil
		}
		r.conns[c] = true
		r.mu.Unlock()
		go r.serveConn(c)
	}
}

// serveConn reads c's calls until containerd closes it, relaying what it
// can and passing the rest to the inner server.
func (r *relay) serveConn(c *client) {
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.conn.Close()
		close(c.gone)
	}()
	local, remote := net.Pipe()
	defer local.Close() // the inner server's connection ends with c
	if !r.pipes.give(remote) {
		close(c.served)
		return
	}
	go func() {
		defer close(c.served)
		copyReplies(c, local)
	}()
	in := bufio.NewReader(c.conn)
	for {
		f, err := readFrame(in)
		if err != nil {
			return
		}
		if f.oversized() {
			// The inner server answers it as ttrpc does, with an error.
			if f.kind() == typeRequest {
				c.handOver()
			}
			if _, err := local.Write(f); err != nil {
				return
			}
			if _, err := io.CopyN(local, in, int64(f.payloadLen())); err != nil {
				return
			}
			continue
		}
		if f.kind() == typeRequest {
			var sent bool
			if f, sent = r.route(c, f); sent {
				continue
			}
			c.handOver()
		}
		if _, err := local.Write(f); err != nil {
			return
		}
	}
}

// copyReplies writes the inner server's replies, read from its pipe, to c.
func copyReplies(c *client, pipe net.Conn) {
	in := bufio.NewReader(pipe)
	for {
		f, err := readFrame(in)
		if err != nil || f.oversized() { // a ttrpc server never sends one
			return
		}
		c.answer(f)
	}
}

// route sends request f to its delegate if it needs no more than that.
// Otherwise it returns f for the inner server, addressed to the service
// that server registers.
func (r *relay) route(c *client, f frame) (_ frame, sent bool) {
	req, err := parseRequest(f.payload())
	if err != nil || req.service != taskV2 && req.service != taskV3 {
		return f, false
	}
	if relayed[req.method] {
		if w := r.svc.wireFor(req.method, req.id); w != nil {
			out := f
			if w.service != req.service {
				out = withService(f, w.service)
			}
			if w.send(c, out) {
				return nil, true
			}
		}
	}
	if req.service != taskV2 {
		f = withService(f, taskV2)
	}
	return f, false
}

// shutdown stops accepting, lets the calls in flight answer (at most until
// ctx ends; the last container's Shutdown is one of them) and closes
// containerd's connections.
func (r *relay) shutdown(ctx context.Context) {
	r.mu.Lock()
	r.stopped = true
	for l := range r.listeners {
		l.Close()
	}
	r.mu.Unlock()
	// Every call answers before the inner server shuts down: ttrpc's
	// Server.Shutdown closes a connection it last saw idle, and it may not
	// have seen yet a call it just started, such as the last container's
	// Shutdown, whose handler ends the router. That reply would be lost.
	for !(r.answered() && r.svc.relayIdle()) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	r.inner.Shutdown(ctx)
	conns := r.clients()
	grace := time.After(closeGrace)
	for _, c := range conns {
		select {
		case <-c.served:
		case <-ctx.Done():
		}
		select {
		case <-c.gone:
		case <-grace:
		case <-ctx.Done():
		}
		c.conn.Close()
	}
}

// clients are containerd's connections.
func (r *relay) clients() []*client {
	r.mu.Lock()
	defer r.mu.Unlock()
	conns := make([]*client, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	return conns
}

// answered tells whether the inner server has answered every request
// handed to it.
func (r *relay) answered() bool {
	for _, c := range r.clients() {
		if !c.answered() {
			return false
		}
	}
	return true
}

// wire is the relay's own connection to one delegate. Calls from any of
// containerd's connections share it: each gets a stream id of the wire's
// own, and its reply goes back to the connection and stream it came from.
type wire struct {
	conn    net.Conn
	service string

	// sendMu orders writes with their stream ids: ttrpc servers refuse
	// ids that do not increase.
	sendMu sync.Mutex
	// next is the next stream id; guarded by sendMu.
	next uint32

	mu sync.Mutex
	// pending maps a wire stream id to the call waiting for its reply;
	// guarded by mu.
	pending map[uint32]caller
	// err is why the wire ended, nil while it works; guarded by mu.
	err error
}

// caller is where a relayed call's reply goes.
type caller struct {
	client *client
	stream uint32
}

// dialWire connects a wire to the delegate at address, speaking its task
// API version.
func dialWire(address string, version int) (*wire, error) {
	conn, service, err := delegate.DialConn(context.Background(), address, version)
	if err != nil {
		return nil, err
	}
	w := &wire{conn: conn, service: service, next: 1, pending: map[uint32]caller{}}
	go w.readReplies()
	return w, nil
}

// send writes request f to the delegate for c. False means the wire has
// ended and the call was not sent.
func (w *wire) send(c *client, f frame) bool {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return false
	}
	id := w.next
	w.next += 2
	w.pending[id] = caller{client: c, stream: f.stream()}
	w.mu.Unlock()
	f.setStream(id)
	if _, err := w.conn.Write(f); err != nil {
		w.fail(err) // answers this call too
	}
	return true
}

func (w *wire) readReplies() {
	in := bufio.NewReader(w.conn)
	for {
		f, err := readFrame(in)
		if err == nil && f.oversized() { // a ttrpc server never sends one
			err = fmt.Errorf("reply of %d bytes is over ttrpc's limit", f.payloadLen())
		}
		if err != nil {
			w.fail(err)
			return
		}
		if f.kind() != typeReply {
			continue
		}
		w.mu.Lock()
		c, ok := w.pending[f.stream()]
		ok = ok && w.err == nil // once the wire has ended, fail answers every call
		if ok {
			delete(w.pending, f.stream())
		}
		w.mu.Unlock()
		if ok {
			f.setStream(c.stream)
			c.client.reply(f)
		}
	}
}

// fail ends the wire and answers the calls waiting on it with an error, as
// a ttrpc client whose connection ends does.
func (w *wire) fail(err error) {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return
	}
	w.err = err
	w.mu.Unlock()
	w.conn.Close()
	// With err set no one else changes pending. The wire stays busy until
	// every call has its answer: the router closes containerd's connections
	// once its wires are idle.
	for _, c := range w.pending {
		c.client.reply(errorReply(c.stream, codes.Unavailable, "%v: connection to the delegate shim ended: %v", ttrpc.ErrClosed, err))
	}
	w.mu.Lock()
	w.pending = nil
	w.mu.Unlock()
}

// idle tells whether no relayed call waits for its reply.
func (w *wire) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) == 0
}

// pipeListener hands the inner server one end of a pipe per connection from
// containerd.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// give passes conn to the inner server; false once it stopped accepting.
func (l *pipeListener) give(conn net.Conn) bool {
	select {
	case l.conns <- conn:
		return true
	case <-l.done:
		conn.Close()
		return false
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "triage-router" }
