// Package node reads the facts of the node a workload runs on: what its spec's host-touching
// fields reach once the runtime resolves them (mount sources relative to the bundle and
// through symlinks, namespace paths by identity, the cgroup), and what the hardening depends
// on (AppArmor, user namespaces, the Kata and runsc configurations). It is the one place
// Triage reads the host for a decision; the shim and `triage explain` both use it, so they
// cannot disagree.
package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
)

// Node is a view of the host, rooted at "/" on a real node. Tests root it elsewhere.
type Node struct {
	// Root is prefixed to every host path read ("" or "/" for the real host).
	Root string
}

// Host is the real node.
var Host = Node{}

// Workload names what resolution needs to know about the workload beside its spec.
type Workload struct {
	// Bundle is the container's bundle folder, where the runtime resolves relative paths.
	Bundle string
	// ID is the container's id.
	ID string
	// Sensitive are folders of the node's own that no workload may mount: Triage's state,
	// its audit log's and policy's folders, containerd's state and socket folders.
	Sensitive []string
	// SandboxID and PodUID name the container's pod when the CRI plugin made it: the
	// CRI plugin's folders of that sandbox (its hosts, resolv.conf, /dev/shm) and the
	// kubelet's folder of that pod are the runtime's own mounts, not a finding. Other pods'
	// folders stay sensitive.
	SandboxID, PodUID string
}

func (n Node) host(p string) string {
	return filepath.Join("/", n.Root, p)
}

// Resolve returns what spec's host-touching fields reach on this node, as runc and runsc
// resolve them: a relative mount source or root against the bundle, then every symlink on
// the host; an overlay's lower, upper and work folders alike; a namespace path by the
// identity (device and inode) of the namespace it names, against init's.
func (n Node) Resolve(s *specs.Spec, w Workload) *classifier.Reach {
	r := &classifier.Reach{Sensitive: cleanAll(w.Sensitive)}
	for _, m := range s.Mounts {
		mr := classifier.MountReach{Shared: classifier.SharedPropagation(m.Options)}
		switch classifier.MountKind(m) {
		case "bind":
			mr.HostPaths = []string{n.Path(w.Bundle, m.Source)}
		case "overlay":
			for _, p := range classifier.OverlayPaths(m) {
				mr.HostPaths = append(mr.HostPaths, n.Path(w.Bundle, p))
			}
		case "filesystem":
			mr.Filesystem = m.Type
		}
		r.Mounts = append(r.Mounts, mr)
	}
	r.RuntimeOwned = runtimeOwned(r.Mounts, w.SandboxID, w.PodUID)
	if s.Root != nil {
		r.Root = n.Path(w.Bundle, s.Root.Path)
		r.Snapshot = r.Root == n.Path(w.Bundle, "rootfs")
	}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			r.Namespaces = append(r.Namespaces, n.namespace(ns))
		}
		r.CgroupExists = n.cgroupExists(s.Linux.CgroupsPath)
	}
	return r
}

func cleanAll(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p != "" {
			out = append(out, filepath.Clean(p))
		}
	}
	return out
}

// Path resolves p as the runtime will: against bundle when relative, then through every
// symlink on the host. Of a path that does not exist, the part that exists is resolved and
// the rest appended, as the runtime would create it.
func (n Node) Path(bundle, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	p = filepath.Clean("/" + p)
	rest := ""
	for {
		resolved, err := filepath.EvalSymlinks(n.host(p))
		if err == nil {
			rel := strings.TrimPrefix(resolved, filepath.Clean(n.host("/")))
			return filepath.Join("/", rel, rest)
		}
		if p == "/" {
			return filepath.Join("/", rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = filepath.Dir(p)
	}
}

// namespace resolves one namespace entry: a path whose namespace is the same (device and
// inode) as init's of that type, or as the one Triage itself runs in (containerd's, which
// runs its shims in its own), is the host's, whatever the path's spelling (/proc/2/ns/net,
// a bind mount of it, /proc/self/...).
func (n Node) namespace(ns specs.LinuxNamespace) classifier.NamespaceReach {
	if ns.Path == "" {
		return classifier.NamespaceReach{Origin: classifier.NamespaceNew}
	}
	var got unix.Stat_t
	if err := unix.Stat(n.host(ns.Path), &got); err != nil {
		return classifier.NamespaceReach{Origin: classifier.NamespaceUnresolved, Detail: fmt.Sprintf("cannot be resolved: %v", err)}
	}
	read := 0
	for _, pid := range []string{"1", "self"} {
		hostPath := "/proc/" + pid + "/ns/" + nsFile(ns.Type)
		var host unix.Stat_t
		// init's may be unreadable (a PID 1 with capabilities Triage lacks): then the
		// namespace Triage runs in stands for the host's.
		if unix.Stat(n.host(hostPath), &host) != nil {
			continue
		}
		read++
		if got.Dev == host.Dev && got.Ino == host.Ino {
			return classifier.NamespaceReach{Origin: classifier.NamespaceHost, Detail: "the same namespace as " + hostPath}
		}
	}
	if read == 0 {
		return classifier.NamespaceReach{Origin: classifier.NamespaceUnresolved, Detail: "the host's namespaces cannot be read"}
	}
	return classifier.NamespaceReach{Origin: classifier.NamespaceJoined}
}

// nsFile is the name of a namespace type's file in /proc/PID/ns.
func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.PIDNamespace:
		return "pid"
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	case specs.IPCNamespace:
		return "ipc"
	case specs.UTSNamespace:
		return "uts"
	case specs.UserNamespace:
		return "user"
	case specs.CgroupNamespace:
		return "cgroup"
	case specs.TimeNamespace:
		return "time"
	}
	return string(t)
}

// cgroupExists reports whether a cgroupfs-style cgroupsPath names a cgroup that exists,
// in the unified hierarchy or in v1's pids hierarchy. systemd's "slice:prefix:name" form
// names a new scope, judged by its name alone.
func (n Node) cgroupExists(p string) bool {
	if p == "" || !strings.HasPrefix(p, "/") {
		return false
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(n.host(filepath.Join(root, p, "cgroup.procs"))); err == nil {
			return true
		}
	}
	return false
}

// HardeningHost returns what tier t's hardening depends on in this node, with what was
// resolved about the workload.
func (n Node) HardeningHost(t *policy.Tier, id string, reach *classifier.Reach, unknown []string) hardening.Host {
	h := hardening.Host{
		ID: id, Reach: reach, UnknownFields: unknown,
		AppArmor:       n.AppArmor(),
		UserNamespaces: n.userNamespaces(),
	}
	switch t.Kind() {
	case policy.KindKata:
		h.KataGuestSeccomp = KataGuestSeccomp(t.ConfigPath)
	case policy.KindGVisor:
		h.GVisorOCISeccomp = GVisorOCISeccomp(t.ConfigPath)
	}
	return h
}

// AppArmor reports whether the node's kernel has AppArmor enabled.
func (n Node) AppArmor() bool {
	return strings.TrimSpace(n.read("/sys/module/apparmor/parameters/enabled")) == "Y"
}

func (n Node) read(p string) string {
	b, _ := os.ReadFile(n.host(p))
	return string(b)
}

func (n Node) userNamespaces() bool {
	if _, err := os.Stat(n.host("/proc/self/ns/user")); err != nil {
		return false
	}
	v, err := strconv.Atoi(strings.TrimSpace(n.read("/proc/sys/user/max_user_namespaces")))
	return err == nil && v > 0
}

// KataGuestSeccomp tells whether the Kata configuration at path lets the guest apply the
// OCI seccomp profile: [runtime] disable_guest_seccomp = false, where Kata keeps it
// (Kata's default is true). false when the file cannot be read.
func KataGuestSeccomp(path string) bool {
	var cfg struct {
		Runtime struct {
			DisableGuestSeccomp *bool `toml:"disable_guest_seccomp"`
		} `toml:"runtime"`
	}
	b, err := os.ReadFile(path)
	if err != nil || toml.Unmarshal(b, &cfg) != nil || cfg.Runtime.DisableGuestSeccomp == nil {
		return false
	}
	return !*cfg.Runtime.DisableGuestSeccomp
}

// GVisorOCISeccomp tells whether the runsc shim configuration at path (the tier's
// config_path, containerd-shim-runsc-v1's TOML) has runsc apply the OCI seccomp profile:
// [runsc_config] oci-seccomp = "true". runsc ignores the profile otherwise. false when the
// file cannot be read.
func GVisorOCISeccomp(path string) bool {
	var cfg struct {
		RunscConfig map[string]string `toml:"runsc_config"`
	}
	b, err := os.ReadFile(path)
	if err != nil || toml.Unmarshal(b, &cfg) != nil {
		return false
	}
	v, err := strconv.ParseBool(cfg.RunscConfig["oci-seccomp"])
	return err == nil && v
}

// gVisorDefaultRoot is runsc's state root when the shim configuration names none.
const gVisorDefaultRoot = "/run/containerd/runsc"

// GVisorRoot is runsc's state root that the runsc shim configuration at path (the tier's
// config_path) names with its top-level root key, else the shim's default.
func GVisorRoot(path string) string {
	var cfg struct {
		Root string `toml:"root"`
	}
	if b, err := os.ReadFile(path); err == nil && toml.Unmarshal(b, &cfg) == nil && filepath.IsAbs(cfg.Root) {
		return cfg.Root
	}
	return gVisorDefaultRoot
}

// ContainerdState returns containerd's state folder from a bundle folder
// (STATE/io.containerd.runtime.v2.task/NAMESPACE/ID), or "" when bundle is not one.
func ContainerdState(bundle string) string {
	b := filepath.Clean(bundle)
	tasks := filepath.Dir(filepath.Dir(b))
	if filepath.Base(tasks) != "io.containerd.runtime.v2.task" {
		return ""
	}
	return filepath.Dir(tasks)
}

// Sensitive returns the node's own folders that no workload may mount, besides the fixed
// list in package classifier: Triage's state, the policy's and audit log's folders,
// containerd's state (from the bundle) and its socket's folder. Empty arguments are
// skipped.
func Sensitive(triageState, policyFile, auditLog, bundle, containerdAddress string) []string {
	var out []string
	add := func(p string) {
		if p != "" && p != "." && !slices.Contains(out, p) {
			out = append(out, filepath.Clean(p))
		}
	}
	add(triageState)
	if policyFile != "" && filepath.IsAbs(policyFile) {
		add(filepath.Dir(policyFile))
	}
	if auditLog != "" {
		add(filepath.Dir(auditLog))
	}
	add(ContainerdState(bundle))
	if containerdAddress != "" {
		add(filepath.Dir(containerdAddress))
	}
	return out
}

// criSandboxes is where the CRI plugin keeps each sandbox's files, in containerd's root
// and state folders (the same in 1.6 and 2.x).
const criSandboxes = "/io.containerd.grpc.v1.cri/sandboxes/"

// runtimeOwned returns the folders whose contents the CRI plugin and the kubelet mount into
// the pod sandboxID (with Kubernetes uid podUID): its sandbox folder in containerd's root or
// state, wherever a mount reaches it, and the kubelet's folder of the pod.
func runtimeOwned(mounts []classifier.MountReach, sandboxID, podUID string) []string {
	var out []string
	if sandboxID != "" {
		own := criSandboxes + sandboxID + "/"
		for _, m := range mounts {
			for _, p := range m.HostPaths {
				if i := strings.Index(p, own); i >= 0 && !slices.Contains(out, p[:i+len(own)-1]) {
					out = append(out, p[:i+len(own)-1])
				}
			}
		}
	}
	if podUID != "" {
		out = append(out, filepath.Join("/var/lib/kubelet/pods", podUID))
	}
	return out
}
