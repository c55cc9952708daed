package shim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/router"
)

// defaultShimSocketDir is where containerd's shim library puts a shim's socket unless
// containerd (2.4+) names a socket_dir.
const defaultShimSocketDir = "/run/containerd/s"

// endStalePod ends what a start that died half-way (its process killed) left running for
// a pod that no container containerd knows belongs to: its router, which no containerd
// connection will ever shut down, and the delegate shims started for its members, which
// serve nothing containerd knows. The caller holds the pod's lock.
func endStalePod(ctx context.Context, f flags, podID string, members []string, socketDir string) {
	for _, pid := range routerDaemons(f.address, f.namespace, podID) {
		log.G(ctx).WithField("pid", pid).Warn("stale pod: ending the router a failed start left")
		unix.Kill(pid, unix.SIGKILL)
	}
	delegate.RemoveStaleSocket("unix://"+routerSocket(f.address, f.namespace, podID), reapTimeout)
	dirs := []string{defaultShimSocketDir}
	if socketDir != "" && socketDir != defaultShimSocketDir {
		dirs = append(dirs, socketDir)
	}
	for _, id := range append(slices.Clone(members), podID) {
		for _, dir := range dirs {
			endStaleDelegate(ctx, f, "unix://"+shimSocket(dir, f.address, f.namespace, id), id)
		}
	}
}

// endLeftDelegate ends a delegate shim that serves the socket containerd's shim library
// names for this container's id although its pod has no state: one a start killed
// half-way left, which would otherwise take the new container (runsc's shim reuses a
// socket it finds served). Without such a socket, it costs a stat.
func endLeftDelegate(ctx context.Context, f flags) {
	sock := shimSocket(defaultShimSocketDir, f.address, f.namespace, f.id)
	if _, err := os.Lstat(sock); err == nil {
		endStaleDelegate(ctx, f, "unix://"+sock, f.id)
	}
}

// shimSocket is the socket containerd's shim library names for a shim of container (or
// group) id, as pkg/shim's SocketAddress does.
func shimSocket(dir, address, ns, id string) string {
	h := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return filepath.Join(dir, hex.EncodeToString(h[:]))
}

// endStaleDelegate deletes container id from the delegate shim at address, if one serves
// there, and shuts it down.
func endStaleDelegate(ctx context.Context, f flags, address, id string) {
	if !delegate.Reachable(address) {
		// Its shim is gone; a socket file it left is stale.
		delegate.RemoveStaleSocket(address, 0)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*reapTimeout)
	defer cancel()
	for _, version := range []int{3, 2} {
		closed := make(chan struct{})
		c, err := delegate.Dial(ctx, address, version, func() { close(closed) })
		if err != nil {
			return
		}
		if _, err := c.State(ctx, &taskv2.StateRequest{ID: id}); status.Code(err) == codes.Unimplemented {
			// The shim does not serve this version of the task API.
			c.Close()
			continue
		}
		log.G(ctx).WithField("delegate", address).Warn("stale pod: ending the delegate a failed start left")
		// It serves nothing containerd knows; one that stays (a start killed in the middle
		// of its own) is ended.
		endDelegate(ctx, c, closed, address, id, reapTimeout/4, func() bool {
			pids := shimDaemons(f, id)
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
			return len(pids) > 0
		})
		return
	}
}

// shimDaemons lists the delegate shims (containerd-shim-*, not Triage's own) started for
// container id of namespace ns of the containerd at address, by their command lines.
func shimDaemons(f flags, id string) []int {
	return daemons(func(name string, args []string) bool {
		return strings.HasPrefix(name, "containerd-shim-") && name != "containerd-shim-triage-v2" &&
			flagIs(args, "address", f.address) && flagIs(args, "namespace", f.namespace) && flagIs(args, "id", id)
	})
}

// routerDaemons lists the routers serving pod of namespace ns of the containerd at
// address, by their command lines.
func routerDaemons(address, ns, pod string) []int {
	return daemons(func(name string, args []string) bool {
		return name == router.DaemonBinary && flagIs(args, "address", address) && flagIs(args, "namespace", ns) && flagIs(args, "id", pod)
	})
}

// runscProcesses lists runsc's processes (runsc, runsc-sandbox, runsc-gofer) for the
// container of bundle: each names the bundle in its arguments.
func runscProcesses(bundle string) []int {
	return daemons(func(name string, args []string) bool {
		return strings.HasPrefix(name, "runsc") && slices.ContainsFunc(args, func(a string) bool {
			return a == bundle || a == "--bundle="+bundle
		})
	})
}

// daemons lists the processes whose program name and arguments match.
func daemons(match func(name string, args []string) bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if match(filepath.Base(args[0]), args) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// flagIs tells whether args hold -name value.
func flagIs(args []string, name, value string) bool {
	i := slices.Index(args, "-"+name)
	return i >= 0 && i+1 < len(args) && args[i+1] == value
}
