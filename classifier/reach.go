package classifier

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Reach is what the host-touching fields of a spec reach on the node once the runtime has
// resolved them: mount sources relative to the bundle and through symlinks, the host paths
// in an overlay's options, the root filesystem, namespace paths by identity, the cgroup.
// Checks judge the Reach, never the spelling of a field. The node package fills it in by
// reading the host; Lexical fills it in from the spec's text alone (tests, fuzzing).
type Reach struct {
	// Mounts[i] is what spec.Mounts[i] reaches.
	Mounts []MountReach `json:"mounts,omitempty"`
	// Root is the host path of the root filesystem, resolved.
	Root string `json:"root,omitempty"`
	// Snapshot: Root is the bundle's rootfs, where containerd mounts the container's
	// snapshot.
	Snapshot bool `json:"snapshot"`
	// Namespaces[i] is what spec.Linux.Namespaces[i] joins.
	Namespaces []NamespaceReach `json:"namespaces,omitempty"`
	// CgroupExists: linux.cgroupsPath names a cgroup that already exists on the host, which
	// the container would join, change and remove on exit.
	CgroupExists bool `json:"cgroup_exists,omitempty"`
	// Sensitive are the node's own sensitive folders besides the fixed list: Triage's state,
	// sockets, audit log and policy folders, containerd's state.
	Sensitive []string `json:"sensitive,omitempty"`
	// RuntimeOwned are folders below a sensitive path that hold what the runtime itself
	// mounts into this pod (its sandbox's hosts, resolv.conf, /dev/shm; the kubelet's
	// volumes of this pod): mounting what is below them is not a finding.
	RuntimeOwned []string `json:"runtime_owned,omitempty"`
}

// MountReach is what one mount reaches on the host.
type MountReach struct {
	// HostPaths are the host paths the mount exposes, resolved (a bind mount's source, an
	// overlay's lower, upper and work folders); none for a filesystem of the container's
	// own (proc, tmpfs, ...).
	HostPaths []string `json:"host_paths,omitempty"`
	// Filesystem is the type of a mount that is neither a bind mount nor a filesystem of
	// the container's own: a disk, a network share or a host-global filesystem (binfmt_misc,
	// debugfs, ...), which reaches host data whatever its source.
	Filesystem string `json:"filesystem,omitempty"`
	// Shared: the mount propagates mounts made in the container back to the host.
	Shared bool `json:"shared,omitempty"`
}

// NamespaceOrigin is where a namespace of the spec comes from.
type NamespaceOrigin string

const (
	// NamespaceNew: the runtime creates it.
	NamespaceNew NamespaceOrigin = "new"
	// NamespaceHost: its path is the host's namespace (same identity as init's).
	NamespaceHost NamespaceOrigin = "host"
	// NamespaceJoined: its path is an existing namespace that is not the host's.
	NamespaceJoined NamespaceOrigin = "joined"
	// NamespaceUnresolved: its path could not be resolved; judged as the host's.
	NamespaceUnresolved NamespaceOrigin = "unresolved"
)

// NamespaceReach is what one namespace entry of the spec joins.
type NamespaceReach struct {
	Origin NamespaceOrigin `json:"origin"`
	// Detail says how it was resolved ("same inode as /proc/1/ns/net").
	Detail string `json:"detail,omitempty"`
}

// ownFilesystems are the filesystem types that give a container a fresh instance of its
// own, with no host data behind them.
var ownFilesystems = []string{"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "hugetlbfs"}

// IsBind reports a bind mount, by type or option.
func IsBind(m specs.Mount) bool {
	return m.Type == "bind" || m.Type == "rbind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// OverlayPaths returns the folders an overlay mount's options name (lowerdir, upperdir,
// workdir, and the data-only lower layers).
func OverlayPaths(m specs.Mount) []string {
	var out []string
	for _, o := range m.Options {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		switch k {
		case "lowerdir", "lowerdir+", "datadir+":
			for p := range strings.SplitSeq(v, ":") {
				// "::" separates data-only layers in lowerdir.
				if p != "" {
					out = append(out, p)
				}
			}
		case "upperdir", "workdir":
			out = append(out, v)
		}
	}
	return out
}

// MountKind sorts a mount the way the runtime treats it: "bind" (its source is a host
// path), "overlay" (its options name host paths), "own" (a filesystem of the container's
// own) or "filesystem" (anything else, which reaches host data).
func MountKind(m specs.Mount) string {
	switch {
	case IsBind(m):
		return "bind"
	case m.Type == "overlay":
		return "overlay"
	case slices.Contains(ownFilesystems, m.Type):
		return "own"
	}
	return "filesystem"
}

// SharedPropagation reports mount options that propagate mounts back to the host.
func SharedPropagation(options []string) bool {
	return slices.ContainsFunc(options, func(o string) bool { return o == "shared" || o == "rshared" })
}

// Lexical returns the Reach of a spec judged from its text alone, as if no path were a
// symlink: relative paths are taken against bundle, a namespace path is the host's when it
// names init's, the runtime's own (/proc/self) or thread-self, and no cgroup exists.
func Lexical(s *specs.Spec, bundle string) *Reach {
	r := &Reach{}
	abs := func(p string) string {
		if !path.IsAbs(p) {
			p = path.Join("/", bundle, p)
		}
		return path.Clean(p)
	}
	for _, m := range s.Mounts {
		mr := MountReach{Shared: SharedPropagation(m.Options)}
		switch MountKind(m) {
		case "bind":
			mr.HostPaths = []string{abs(m.Source)}
		case "overlay":
			for _, p := range OverlayPaths(m) {
				mr.HostPaths = append(mr.HostPaths, abs(p))
			}
		case "filesystem":
			mr.Filesystem = m.Type
		}
		r.Mounts = append(r.Mounts, mr)
	}
	if s.Root != nil {
		r.Root = abs(s.Root.Path)
		r.Snapshot = r.Root == abs("rootfs")
	}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			r.Namespaces = append(r.Namespaces, lexicalNamespace(ns.Path))
		}
	}
	return r
}

func lexicalNamespace(p string) NamespaceReach {
	if p == "" {
		return NamespaceReach{Origin: NamespaceNew}
	}
	p = path.Clean(p)
	if strings.HasPrefix(p, "/proc/1/ns/") || strings.HasPrefix(p, "/proc/self/ns/") || strings.HasPrefix(p, "/proc/thread-self/ns/") {
		return NamespaceReach{Origin: NamespaceHost, Detail: "names the host's init or the runtime itself"}
	}
	return NamespaceReach{Origin: NamespaceJoined}
}

// sensitiveHostPaths must not be mounted, nor anything below or above them: a folder that
// holds one exposes it too ("/run" holds containerd's socket).
var sensitiveHostPaths = []string{
	"/etc", "/proc", "/sys", "/dev", "/root", "/home", "/boot", "/lib/modules", "/usr/lib/modules",
	"/var/run/docker.sock", "/run/docker.sock", "/var/run/docker", "/run/docker",
	"/var/run/containerd", "/run/containerd", "/var/run/crio", "/run/crio",
	"/var/run/podman", "/run/podman", "/var/run/cri-dockerd.sock", "/run/cri-dockerd.sock",
	"/var/lib/containerd", "/var/lib/kubelet", "/var/lib/docker", "/var/lib/containers",
	"/run/runc", "/run/triage", "/var/run/triage", "/var/log/triage", "/var/log/pods", "/var/log/containers",
}

// SensitivePath reports a host path that is sensitive on the node r describes: the root,
// a sensitive folder, a path below one (but for what the runtime owns) or a folder that
// holds one.
func (r *Reach) SensitivePath(p string) bool {
	p = path.Clean(p)
	if p == "/" {
		return true
	}
	if strictlyUnder(p, r.RuntimeOwned) {
		return false
	}
	near := func(d string) bool { return p == d || isUnder(p, d) || isUnder(d, p) }
	return slices.ContainsFunc(sensitiveHostPaths, near) || slices.ContainsFunc(r.Sensitive, near)
}

// isUnder reports whether p is strictly below dir.
func isUnder(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// strictlyUnder reports whether p is below one of dirs (not a dir itself).
func strictlyUnder(p string, dirs []string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return isUnder(p, d) })
}

// SensitiveMounts lists, as evidence, what the spec mounts from the host that is
// sensitive: a sensitive path (resolved), a filesystem that is not the container's own, a
// mount that propagates back to the host, a root filesystem on a sensitive path.
func SensitiveMounts(s *specs.Spec, r *Reach) []string {
	var ev []string
	for i, m := range s.Mounts {
		if i >= len(r.Mounts) {
			ev = append(ev, fmt.Sprintf("mount at %s was not resolved", m.Destination))
			continue
		}
		mr := r.Mounts[i]
		for _, p := range mr.HostPaths {
			if r.SensitivePath(p) {
				ev = append(ev, fmt.Sprintf("host %s mounted at %s%s", p, m.Destination, spelled(m.Source, p)))
			}
		}
		if mr.Filesystem != "" {
			ev = append(ev, fmt.Sprintf("%s filesystem from %q mounted at %s", mr.Filesystem, m.Source, m.Destination))
		}
		if mr.Shared && len(mr.HostPaths) > 0 {
			ev = append(ev, fmt.Sprintf("mount at %s propagates mounts back to the host (%s)", m.Destination, strings.Join(m.Options, ",")))
		}
	}
	if s.Root != nil && !r.Snapshot && r.Root != "" && r.SensitivePath(r.Root) {
		ev = append(ev, fmt.Sprintf("root filesystem is host %s%s", r.Root, spelled(s.Root.Path, r.Root)))
	}
	if s.Linux != nil && SharedPropagation([]string{s.Linux.RootfsPropagation}) {
		ev = append(ev, fmt.Sprintf("rootfsPropagation %q propagates mounts back to the host", s.Linux.RootfsPropagation))
	}
	return ev
}

// spelled notes how the spec spelled a path that resolved to another.
func spelled(asWritten, resolved string) string {
	if asWritten == resolved {
		return ""
	}
	return fmt.Sprintf(" (spec says %q)", asWritten)
}

// HostNamespaces returns the namespaces the spec shares with the host, as types and
// evidence: a type of hostNamespaceTypes it has no entry for, and any entry whose path
// resolves to the host's namespace or cannot be resolved.
func HostNamespaces(s *specs.Spec, r *Reach) (types []specs.LinuxNamespaceType, evidence []string) {
	var nss []specs.LinuxNamespace
	if s.Linux != nil {
		nss = s.Linux.Namespaces
	}
	for _, typ := range hostNamespaceTypes {
		if !slices.ContainsFunc(nss, func(ns specs.LinuxNamespace) bool { return ns.Type == typ }) {
			types = append(types, typ)
			evidence = append(evidence, fmt.Sprintf("no %s namespace (shares the host's)", typ))
		}
	}
	for i, ns := range nss {
		nr := NamespaceReach{Origin: NamespaceUnresolved}
		if i < len(r.Namespaces) {
			nr = r.Namespaces[i]
		}
		if nr.Origin != NamespaceHost && nr.Origin != NamespaceUnresolved {
			continue
		}
		if !slices.Contains(types, ns.Type) {
			types = append(types, ns.Type)
		}
		ev := fmt.Sprintf("%s namespace joins %s", ns.Type, ns.Path)
		if nr.Detail != "" {
			ev += " (" + nr.Detail + ")"
		}
		evidence = append(evidence, ev)
	}
	return types, evidence
}
