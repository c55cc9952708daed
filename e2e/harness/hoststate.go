package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// hostRuncRoot is the runc shims' default state root, /run/containerd/runc/<namespace>/<id>,
// shared by every daemon on the host. It is used for any container whose runtime options name no
// Root: ctr run, and delegates a runtime starts without one.
const hostRuncRoot = "/run/containerd/runc"

// hostStateGlobs are the host-wide paths that runc derives from <namespace>/<id> for containers
// started through ctr: its state dir and, under each cgroup hierarchy, the cgroup /<namespace>/<id>
// (/sys/fs/cgroup/<ns>/<id> on cgroup v2, /sys/fs/cgroup/<controller>/<ns>/<id> on v1).
// Containers named with Daemon.ID carry the daemon's suffix, which makes them ours.
func hostStateGlobs(suffix string) []string {
	leaf := "*-" + suffix
	return []string{
		filepath.Join(hostRuncRoot, "*", leaf),
		filepath.Join("/sys/fs/cgroup", "*", leaf),
		filepath.Join("/sys/fs/cgroup", "*", "*", leaf),
	}
}

// hostState lists the daemon's container state and cgroups outside its directory.
func hostState(suffix string) []string {
	var out []string
	for _, g := range hostStateGlobs(suffix) {
		matches, _ := filepath.Glob(g) // the patterns are constant and valid
		for _, m := range matches {
			if fi, err := os.Lstat(m); err == nil && fi.IsDir() {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	return out
}

// removeHostState removes the daemon's runc state dirs and empty cgroups outside its directory.
// Call it only after the daemon's processes are gone: a cgroup with a process cannot be removed.
func removeHostState(suffix string) error {
	var errs []error
	for _, p := range hostState(suffix) {
		var err error
		if filepath.Dir(filepath.Dir(p)) == hostRuncRoot {
			err = os.RemoveAll(p)
		} else {
			err = syscall.Rmdir(p) // cgroupfs: only an empty cgroup can be removed, never its files
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
