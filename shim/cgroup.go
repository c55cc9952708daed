package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/triage-runtime/triage/shim/state"
)

// ownCgroup is the cgroup of container id (bundle) that removeCgroup may remove: an
// absolute cgroupsPath ending in its id, as the cgroups_path control requires; "" when the
// spec names none such. A delete reads it first, as containerd removes the bundle when the
// delete takes longer than it waits.
func ownCgroup(bundle, id string) string {
	spec, err := state.ReadSpec(bundle)
	if err != nil || spec.Linux == nil {
		return ""
	}
	path := spec.Linux.CgroupsPath
	if !filepath.IsAbs(path) || filepath.Base(path) != id {
		return ""
	}
	return path
}

// removeCgroup removes a container's own cgroup (ownCgroup) that runc no longer knows of:
// a `runc create` killed half-way, with the pod's shim that ran it, made the cgroup but
// never recorded the container, so `runc delete` cannot find it, and runc's own shim
// leaves it too. What still runs in it is killed first, and waited for (drain).
func removeCgroup(ctx context.Context, path string) {
	if path == "" {
		return
	}
	if cgroups.Mode() == cgroups.Unified {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", path)); err != nil {
			return
		}
		m, err := cgroup2.Load(path)
		if err == nil {
			drain(reapTimeout, func() []int {
				pids, _ := m.Procs(true)
				return intPids(pids)
			})
			err = m.Delete()
		}
		if err != nil {
			log.G(ctx).WithError(err).WithField("cgroup", path).Warn("remove the container's cgroup")
		}
		return
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err == nil {
		// A frozen process takes its SIGKILL only once thawed.
		if err := cg.Thaw(); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).WithField("cgroup", path).Debug("thaw the container's cgroup")
		}
		drain(reapTimeout, func() []int {
			// Every hierarchy: runc may have made the cgroup in some only.
			var pids []int
			for _, s := range cg.Subsystems() {
				procs, _ := cg.Processes(s.Name(), true)
				for _, p := range procs {
					pids = append(pids, p.Pid)
				}
			}
			slices.Sort(pids)
			return slices.Compact(pids)
		})
		err = cg.Delete()
	}
	if err != nil && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
		log.G(ctx).WithError(err).WithField("cgroup", path).Warn("remove the container's cgroup")
	}
	if cgroups.Mode() == cgroups.Hybrid {
		// runc makes the container's folder in the unified hierarchy too, which the v1
		// library does not know.
		if err := os.Remove(filepath.Join("/sys/fs/cgroup/unified", path)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).WithField("cgroup", path).Warn("remove the container's cgroup")
		}
	}
}

// drain kills the processes procs lists until it lists none, for at most within. A killed
// process leaves its cgroup only once it has exited, which one in the middle of runc's or
// runsc's setup, or a sandbox tearing down its memory, takes tens of milliseconds to do,
// and the cgroup cannot be removed before.
func drain(within time.Duration, procs func() []int) {
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		pids := procs()
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func intPids(pids []uint64) []int {
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out
}
