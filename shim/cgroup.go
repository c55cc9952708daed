package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/triage-runtime/triage/shim/state"
)

// removeCgroup removes the cgroup of container id (bundle) that runc no longer knows of:
// a `runc create` killed half-way, with the pod's shim that ran it, made the cgroup but
// never recorded the container, so `runc delete` cannot find it, and runc's own shim
// leaves it too. Only the container's own cgroup is touched (an absolute cgroupsPath
// ending in its id, as the cgroups_path control requires); what still runs in it is
// killed first.
func removeCgroup(ctx context.Context, bundle, id string) {
	spec, err := state.ReadSpec(bundle)
	if err != nil || spec.Linux == nil {
		return
	}
	path := spec.Linux.CgroupsPath
	if !filepath.IsAbs(path) || filepath.Base(path) != id {
		return
	}
	if cgroups.Mode() == cgroups.Unified {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", path)); err != nil {
			return
		}
		m, err := cgroup2.Load(path)
		if err == nil {
			if err = m.Kill(); err == nil {
				err = m.Delete()
			}
		}
		if err != nil {
			log.G(ctx).WithError(err).WithField("cgroup", path).Warn("remove the container's cgroup")
		}
		return
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err == nil {
		if procs, perr := cg.Processes(cgroup1.Devices, true); perr == nil {
			for _, p := range procs {
				unix.Kill(p.Pid, unix.SIGKILL)
			}
		}
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
