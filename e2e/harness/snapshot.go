package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/triage-runtime/triage/shim/front"
	"github.com/triage-runtime/triage/shim/state"
)

// HostShimSocketDir is where shims built on containerd's shim library put their task sockets
// whatever the daemon's state dir is: unix:///run/containerd/s/sha256(address/namespace/id).
const HostShimSocketDir = "/run/containerd/s"

// TriageSocketDir is where Triage's routers (and triage-shimd) bind their sockets, whatever
// the daemon's state dir is, as shims do in HostShimSocketDir.
const TriageSocketDir = front.SocketDir

// sharedSocketDirs are the socket folders every daemon on the host shares.
var sharedSocketDirs = []string{HostShimSocketDir, TriageSocketDir}

// Resources is what a daemon and its containers hold at one moment, found through the daemon's
// directory. Compare two with Diff.
type Resources struct {
	// ContainerdPID is the daemon serving dir (its command line names dir/config.toml); 0 if none.
	ContainerdPID int
	// ContainerdFDs are its open file descriptors, as what they point to (see fdTargets).
	ContainerdFDs []string
	// Processes are all other processes whose command line or cwd mention dir (shims, runsc),
	// with their descendants (containers), as "pid N [comm]: cmdline".
	Processes []string
	// ShimDaemons are the pids of triage-shimd, the node daemon of containerd-shim-triage-v2.
	// It serves while the daemon runs (or until idle), as containerd does: not a leak, and
	// neither is the socket it serves on (not in Sockets).
	ShimDaemons []int
	// Mounts are the mount points under dir (rootfs overlays, netns, shm). For a daemon with a
	// private /run (Options.PrivateRun) they are read in its mount namespace and include the
	// mounts under /run there, which is the daemon's own.
	Mounts []string
	// Sockets are unix socket files under dir (bound or stale) and the sockets the daemon's
	// processes hold in the shared socket folders (HostShimSocketDir, TriageSocketDir).
	Sockets []string
	// OrphanShimSockets are socket files in HostShimSocketDir or TriageSocketDir that no
	// process has bound: a shim or router died, or left, without removing its socket. Their
	// owner cannot be told apart, so a concurrently running daemon that leaks one shows up here
	// too.
	OrphanShimSockets []string
	// Bundles are task bundle directories left in the state dir, as "namespace/id".
	Bundles []string
	// HostState are runc state dirs and cgroups outside dir of containers named with Daemon.ID.
	HostState []string
	// PodState are the daemon's pod folders in Triage's state (state.ContainerdDir), as
	// "namespace@pod".
	PodState []string
}

// Snapshot captures what the daemon owning dir (see Daemon.Dir) and its containers hold now.
func Snapshot(dir string) (Resources, error) {
	var r Resources
	procs, err := procsOf(dir)
	if err != nil {
		return r, fmt.Errorf("list processes: %w", err)
	}
	var errs []error
	var others []proc
	daemonSockets := map[string]bool{} // base names: a private /run shows them under dir
	for _, p := range procs {
		if r.ContainerdPID == 0 && strings.Contains(p.cmdline, "--config "+layout{dir: dir}.config()) {
			r.ContainerdPID = p.pid
			if r.ContainerdFDs, err = fdTargets(p.pid); err != nil {
				errs = append(errs, fmt.Errorf("list fds of containerd: %w", err))
			}
			continue
		}
		if sock, ok := shimDaemonSocket(p); ok {
			r.ShimDaemons = append(r.ShimDaemons, p.pid)
			daemonSockets[filepath.Base(sock)] = true
			continue
		}
		others = append(others, p)
		r.Processes = append(r.Processes, p.String())
	}
	// A daemon with a private /run (Options.PrivateRun) has its shims' sockets under dir; the
	// host's HostShimSocketDir is then none of its business (other daemons' orphans there).
	private := r.ContainerdPID != 0 && ownMountNS(r.ContainerdPID)
	shared := sharedSocketDirs
	if private {
		shared = nil
	}
	if private {
		r.Mounts, err = mountsIn(filepath.Join("/proc", strconv.Itoa(r.ContainerdPID), "mountinfo"), func(mp string) bool {
			return under(mp, dir) || (mp != "/run" && under(mp, "/run"))
		})
	} else {
		r.Mounts, err = mountsUnder(dir)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("list mounts: %w", err))
	}
	if r.Sockets, r.OrphanShimSockets, err = sockets(dir, others, shared); err != nil {
		errs = append(errs, err)
	}
	r.Sockets = slices.DeleteFunc(r.Sockets, func(s string) bool { return daemonSockets[filepath.Base(s)] })
	bundles, err := filepath.Glob(filepath.Join(layout{dir: dir}.state(), "io.containerd.runtime.v2.task", "*", "*"))
	if err != nil {
		errs = append(errs, err)
	}
	for _, b := range bundles {
		r.Bundles = append(r.Bundles, strings.TrimPrefix(b, filepath.Dir(filepath.Dir(b))+"/"))
	}
	r.HostState = hostState(layout{dir: dir}.suffix())
	if !private {
		if r.PodState, err = podState(layout{dir: dir}); err != nil {
			errs = append(errs, err)
		}
	}
	return r, errors.Join(errs...)
}

// podState lists the pod folders Triage keeps for the daemon of l (none once its pods are gone).
// A daemon with a private /run keeps them there.
func podState(l layout) ([]string, error) {
	entries, err := os.ReadDir(state.ContainerdDir(l.socket()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

// shimDaemonSocket tells whether p is a serving triage-shimd, and its socket.
func shimDaemonSocket(p proc) (string, bool) {
	args := strings.Fields(p.cmdline)
	if len(args) < 2 || filepath.Base(args[0]) != "triage-shimd" || args[1] != "serve" {
		return "", false
	}
	for i, a := range args[:len(args)-1] {
		if a == "-socket" {
			return args[i+1], true
		}
	}
	return "", true
}

// sockets finds unix sockets under dir, the sockets the daemon's processes hold in the shared
// folders (normally sharedSocketDirs), and the orphans there.
func sockets(dir string, procs []proc, shared []string) (mine, orphans []string, err error) {
	bound, err := boundUnixSockets()
	if err != nil {
		return nil, nil, fmt.Errorf("list unix sockets: %w", err)
	}
	held := socketInodes(procs)
	isBound := map[string]bool{}
	set := map[string]bool{}
	for _, s := range bound {
		isBound[s.path] = true
		if slices.Contains(shared, filepath.Dir(s.path)) && held[s.inode] {
			set[s.path] = true
		}
	}
	// Socket files on disk, bound or not. The walk skips what vanishes under it.
	walkErr := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && e.Type()&fs.ModeSocket != 0 {
			set[path] = true
		}
		return nil
	})
	if walkErr != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", dir, walkErr)
	}
	for _, d := range shared {
		entries, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		for _, e := range entries {
			path := filepath.Join(d, e.Name())
			if e.Type()&fs.ModeSocket != 0 && !isBound[path] {
				orphans = append(orphans, path)
			}
		}
	}
	return sortedKeys(set), orphans, nil
}

// Diff lists, one line each, what after holds that before did not: leaked processes, mounts,
// sockets, bundles, host state and Triage pod state, and growth of the daemon's open file descriptors (when it is the same
// daemon process). An empty result means nothing leaked.
func Diff(before, after Resources) []string {
	var leaks []string
	added := func(kind string, b, a []string) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				leaks = append(leaks, kind+": "+x)
			}
		}
	}
	added("process", before.Processes, after.Processes)
	added("mount", before.Mounts, after.Mounts)
	added("socket", before.Sockets, after.Sockets)
	added("orphan shim socket", before.OrphanShimSockets, after.OrphanShimSockets)
	added("task bundle", before.Bundles, after.Bundles)
	added("host state", before.HostState, after.HostState)
	added("triage pod state", before.PodState, after.PodState)
	if before.ContainerdPID != 0 && before.ContainerdPID == after.ContainerdPID &&
		len(after.ContainerdFDs) > len(before.ContainerdFDs) {
		leaks = append(leaks, fmt.Sprintf("containerd pid %d fds: %d -> %d (%s)",
			after.ContainerdPID, len(before.ContainerdFDs), len(after.ContainerdFDs), moreOf(before.ContainerdFDs, after.ContainerdFDs)))
	}
	return leaks
}

// settleTime bounds how long Leaks waits for containerd's asynchronous cleanups (a shim exits,
// a mount goes, an fd is closed a moment after the calls that freed them returned).
const settleTime = 15 * time.Second

// Leaks is what the daemon owning dir holds now that it did not hold at before (Diff), once
// settled: it snapshots again until nothing is left or settleTime has passed. ignore, if set,
// drops lines that are not leaks (known upstream bugs).
func Leaks(dir string, before Resources, ignore func(string) bool) ([]string, error) {
	deadline := time.Now().Add(settleTime)
	for {
		after, err := Snapshot(dir)
		if err != nil {
			return nil, err
		}
		leaks := Diff(before, after)
		if ignore != nil {
			leaks = slices.DeleteFunc(leaks, ignore)
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// moreOf says what after holds more of than before, as "+3 socket, +1 /path".
func moreOf(before, after []string) string {
	n := map[string]int{}
	for _, x := range after {
		n[x]++
	}
	for _, x := range before {
		n[x]--
	}
	var parts []string
	for _, x := range slices.Sorted(maps.Keys(n)) {
		if n[x] > 0 {
			parts = append(parts, fmt.Sprintf("+%d %s", n[x], x))
		}
	}
	return strings.Join(parts, ", ")
}
