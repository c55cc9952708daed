package shim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/triage-runtime/triage/shim/front"
)

// socketDir holds the routers' sockets (and triage-shimd's). It is Triage's
// own folder, so a delegate that looks for (runc) or takes over (Kata) the
// socket it derives from the same inputs never finds a router's.
const socketDir = front.SocketDir

// routerSocket is the router's socket path for a pod. The salt keeps it apart
// from every delegate's sha256(address/ns/group) name.
func routerSocket(address, ns, pod string) string {
	h := sha256.Sum256([]byte(address + "#triage/" + ns + "/" + pod))
	return filepath.Join(socketDir, hex.EncodeToString(h[:]))
}

// listenRouter binds the pod's router socket. When a live router already
// serves it, existing is true and no listener is returned; a stale socket
// left by a dead router is replaced.
func listenRouter(path string) (l *net.UnixListener, existing bool, err error) {
	return listenSocket("unix", path)
}

// listenSocket binds a daemon's socket (network unix or unixpacket). When a
// live daemon already serves it, existing is true and no listener is
// returned; a stale socket left by a dead one is replaced.
func listenSocket(network, path string) (l *net.UnixListener, existing bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, false, err
	}
	for range 2 {
		l, err = net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
		if err == nil {
			l.SetUnlinkOnClose(false)
			return l, false, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, false, fmt.Errorf("listen on %s: %w", path, err)
		}
		if canDial(network, path) {
			return nil, true, nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false, err
		}
	}
	return nil, false, fmt.Errorf("listen on %s: %w", path, err)
}

func canConnect(path string) bool { return canDial("unix", path) }

func canDial(network, path string) bool {
	c, err := net.DialTimeout(network, path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
