package classifier

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/policy"
)

// Finding is one risk found in a workload's spec, with the evidence for it.
type Finding struct {
	ID       string `json:"id"`
	Evidence string `json:"evidence"`
}

// check looks for one risk; it returns the evidence, or "" when the risk is absent.
// Checks run only on a spec with a process, so s.Process is never nil; s.Linux may be.
type check struct {
	id  string
	run func(s *specs.Spec) string
}

// checks run in this order, which is the order of the findings reported (and of
// policy.FindingIDs).
var checks = []check{
	{policy.FindingPrivileged, checkPrivileged},
	{policy.FindingHostNamespace, checkHostNamespace},
	{policy.FindingSensitiveHostMount, checkSensitiveHostMount},
	{policy.FindingDangerousCapability, checkDangerousCapability},
	{policy.FindingNonBaseline, checkNonBaselineCapability},
	{policy.FindingRunAsRoot, checkRunAsRoot},
	{policy.FindingSeccompUnconfined, checkSeccompUnconfined},
	{policy.FindingApparmorUnconfined, checkApparmorUnconfined},
	{policy.FindingPrivilegeEscalation, checkPrivilegeEscalation},
	{policy.FindingWritableRootfs, checkWritableRootfs},
	{policy.FindingUnsafeSysctl, checkUnsafeSysctl},
	{policy.FindingHostDevice, HostDeviceAccess},
	{policy.FindingUnmaskedProc, checkUnmaskedProc},
}

// Findings runs every risk check on the workload and returns what it found, in a fixed
// order. A missing spec or process is the single finding invalid-spec.
func Findings(f Facts) []Finding {
	switch {
	case f.Spec == nil:
		return []Finding{{ID: policy.FindingInvalidSpec, Evidence: "no OCI spec (config.json missing or not valid JSON)"}}
	case f.Spec.Process == nil:
		return []Finding{{ID: policy.FindingInvalidSpec, Evidence: "OCI spec has no process"}}
	}
	out := []Finding{}
	for _, c := range checks {
		if ev := c.run(f.Spec); ev != "" {
			out = append(out, Finding{ID: c.id, Evidence: ev})
		}
	}
	return out
}

// allCapabilities are the capabilities every kernel since 3.16 has; holding all of them is
// what a privileged container gets. The ones added in Linux 5.8 and 5.9 are left out: a
// privileged container on an older kernel does not hold them.
var allCapabilities = slices.DeleteFunc(policy.CapabilityNames(), func(n string) bool {
	return n == "CAP_PERFMON" || n == "CAP_BPF" || n == "CAP_CHECKPOINT_RESTORE"
})

// dangerousCapabilities widen the kernel attack surface or reach past the container. None
// is in the Kubernetes PSS baseline set (policy.BaselineCapabilities), which containerd
// gives every container: CAP_NET_RAW, CAP_MKNOD and CAP_SETFCAP are baseline, so holding
// them is the norm, not a finding of this kind.
var dangerousCapabilities = []string{
	"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_NET_ADMIN",
	"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_BOOT", "CAP_SYS_TIME",
	"CAP_SYSLOG", "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_SYS_RESOURCE",
	"CAP_LINUX_IMMUTABLE", "CAP_SYS_PACCT", "CAP_SYS_TTY_CONFIG", "CAP_AUDIT_CONTROL",
	"CAP_IPC_OWNER", "CAP_CHECKPOINT_RESTORE", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
}

// capSet normalises capability names ("sys_admin" and "CAP_SYS_ADMIN" are the same).
func capSet(names []string) map[string]bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		c, _ := policy.CanonicalCapability(n)
		set[c] = true
	}
	return set
}

func checkPrivileged(s *specs.Spec) string {
	if c := s.Process.Capabilities; c != nil {
		bounding := capSet(c.Bounding)
		if !slices.ContainsFunc(allCapabilities, func(n string) bool { return !bounding[n] }) {
			return "the bounding set holds every capability"
		}
	}
	if s.Linux == nil || s.Linux.Seccomp == nil {
		if ev := HostDeviceAccess(s); ev != "" {
			return "no seccomp profile and " + ev
		}
	}
	return ""
}

// hostNamespaceTypes are the namespaces a workload must not share with the host.
var hostNamespaceTypes = []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace}

func checkHostNamespace(s *specs.Spec) string {
	var ev []string
	for _, typ := range hostNamespaceTypes {
		ns, ok := Namespace(s, typ)
		switch {
		case !ok:
			ev = append(ev, fmt.Sprintf("no %s namespace (shares the host's)", typ))
		case IsHostNamespacePath(ns.Path):
			ev = append(ev, fmt.Sprintf("%s namespace joins %s", typ, ns.Path))
		}
	}
	return strings.Join(ev, "; ")
}

// Namespace returns the spec's namespace of type typ, and whether it has one.
func Namespace(s *specs.Spec, typ specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	if s.Linux == nil {
		return specs.LinuxNamespace{}, false
	}
	i := slices.IndexFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == typ })
	if i < 0 {
		return specs.LinuxNamespace{}, false
	}
	return s.Linux.Namespaces[i], true
}

// IsHostNamespacePath reports a namespace path of the host's init process or of the
// runtime itself (/proc/self is resolved by runc, on the host).
func IsHostNamespacePath(p string) bool {
	if p == "" {
		return false
	}
	p = path.Clean(p)
	return strings.HasPrefix(p, "/proc/1/ns/") || strings.HasPrefix(p, "/proc/self/ns/") || strings.HasPrefix(p, "/proc/thread-self/ns/")
}

// sensitiveHostPaths must not be bind-mounted, nor anything below them ("/" only itself).
var sensitiveHostPaths = []string{
	"/etc", "/proc", "/sys", "/dev", "/root", "/home", "/boot", "/lib/modules", "/usr/lib/modules",
	"/var/run/docker.sock", "/run/docker.sock", "/var/run/docker", "/run/docker",
	"/var/run/containerd", "/run/containerd", "/var/run/crio", "/run/crio",
	"/var/run/podman", "/run/podman", "/var/run/cri-dockerd.sock", "/run/cri-dockerd.sock",
	"/var/lib/containerd", "/var/lib/kubelet", "/var/lib/docker", "/var/lib/containers",
}

// runtimeOwnedPaths are below sensitive paths but hold what the runtime itself bind-mounts
// into every pod: the CRI plugin's per-sandbox hosts, resolv.conf and /dev/shm, and the
// kubelet's per-pod volumes and etc-hosts. Mounting them is not a finding.
var runtimeOwnedPaths = []string{
	"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes",
	"/run/containerd/io.containerd.grpc.v1.cri/sandboxes",
	"/var/run/containerd/io.containerd.grpc.v1.cri/sandboxes",
	"/var/lib/kubelet/pods",
}

func checkSensitiveHostMount(s *specs.Spec) string {
	var ev []string
	for _, m := range s.Mounts {
		if IsSensitiveHostMount(m) {
			ev = append(ev, fmt.Sprintf("host %s mounted at %s", m.Source, m.Destination))
		}
	}
	return strings.Join(ev, "; ")
}

// IsSensitiveHostMount reports a bind mount of the host's root, of a sensitive host path
// (/etc, /proc, /sys, a container runtime's socket or state, ...) or of a path below one,
// except the per-pod files the runtime itself mounts.
func IsSensitiveHostMount(m specs.Mount) bool {
	if !isBind(m) || m.Source == "" {
		return false
	}
	src := path.Clean(m.Source)
	return src == "/" || under(src, sensitiveHostPaths) && !strictlyUnder(src, runtimeOwnedPaths)
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || m.Type == "rbind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// under reports whether p is one of dirs or below one of them.
func under(p string, dirs []string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return p == d || strings.HasPrefix(p, d+"/") })
}

// strictlyUnder reports whether p is below one of dirs (not a dir itself).
func strictlyUnder(p string, dirs []string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return strings.HasPrefix(p, d+"/") })
}

func checkDangerousCapability(s *specs.Spec) string {
	return heldCapabilities(s, func(n string) bool { return slices.Contains(dangerousCapabilities, n) })
}

// checkNonBaselineCapability reports capabilities beyond the Kubernetes PSS baseline set.
func checkNonBaselineCapability(s *specs.Spec) string {
	baseline := policy.BaselineCapabilities()
	return heldCapabilities(s, func(n string) bool { return !slices.Contains(baseline, n) })
}

// heldCapabilities lists, in kernel order, the capabilities the process holds (bounding,
// effective or permitted) that match; "" when none does.
func heldCapabilities(s *specs.Spec, match func(string) bool) string {
	c := s.Process.Capabilities
	if c == nil {
		return ""
	}
	held := capSet(slices.Concat(c.Bounding, c.Effective, c.Permitted))
	var found []string
	for _, n := range policy.CapabilityNames() {
		if held[n] && match(n) {
			found = append(found, n)
		}
	}
	return strings.Join(found, ", ")
}

func checkRunAsRoot(s *specs.Spec) string {
	if s.Process.User.UID != 0 {
		return ""
	}
	userns, ok := Namespace(s, specs.UserNamespace)
	switch {
	case !ok:
		return "uid 0 without a user namespace"
	case userns.Path != "":
		// Joining an existing user namespace (a pod's): its mapping is not in this spec.
		return ""
	case hostID(s.Linux.UIDMappings, 0) == 0:
		return "uid 0 mapped to host uid 0 by the user namespace"
	}
	return ""
}

// hostID maps a container id through the user namespace mappings; ids without a mapping
// are treated as 0, the unsafe answer.
func hostID(mappings []specs.LinuxIDMapping, id uint32) uint32 {
	for _, m := range mappings {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return m.HostID + (id - m.ContainerID)
		}
	}
	return 0
}

func checkSeccompUnconfined(s *specs.Spec) string {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return "no seccomp profile"
	}
	sc := s.Linux.Seccomp
	allows := func(a specs.LinuxSeccompAction) bool { return a == specs.ActAllow || a == specs.ActLog }
	if allows(sc.DefaultAction) && !slices.ContainsFunc(sc.Syscalls, func(r specs.LinuxSyscall) bool { return !allows(r.Action) }) {
		return fmt.Sprintf("seccomp profile allows every syscall (default action %s)", sc.DefaultAction)
	}
	return ""
}

func checkApparmorUnconfined(s *specs.Spec) string {
	switch s.Process.ApparmorProfile {
	case "":
		return "no AppArmor profile"
	case "unconfined":
		return `AppArmor profile "unconfined"`
	}
	return ""
}

func checkPrivilegeEscalation(s *specs.Spec) string {
	if s.Process.NoNewPrivileges {
		return ""
	}
	return "noNewPrivileges is false: setuid binaries and file capabilities can raise privileges"
}

func checkWritableRootfs(s *specs.Spec) string {
	if s.Root != nil && s.Root.Readonly {
		return ""
	}
	return "root filesystem is writable"
}

// safeSysctls is the Kubernetes safe set: namespaced and unable to affect other workloads.
var safeSysctls = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
}

func checkUnsafeSysctl(s *specs.Spec) string {
	if s.Linux == nil {
		return ""
	}
	var ev []string
	for _, k := range slices.Sorted(maps.Keys(s.Linux.Sysctl)) {
		// Sysctls may be written with '/' instead of '.'.
		if !slices.Contains(safeSysctls, strings.ReplaceAll(k, "/", ".")) {
			ev = append(ev, k+"="+s.Linux.Sysctl[k])
		}
	}
	return strings.Join(ev, ", ")
}

// defaultDevice is a device cgroup rule every container gets (runc's and containerd's
// defaults): /dev/null, zero, full, random, urandom, tty, console, ptmx, pts, tun.
type defaultDevice struct {
	major, minor int64 // minor -1: any
}

var defaultDevices = []defaultDevice{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}, {10, 200}}

// HostDeviceAccess describes host devices given to the workload and device cgroup rules
// that allow more than the defaults; "" when there are none.
func HostDeviceAccess(s *specs.Spec) string {
	if s.Linux == nil {
		return ""
	}
	var ev []string
	for _, d := range s.Linux.Devices {
		ev = append(ev, fmt.Sprintf("device %s (%s %d:%d)", d.Path, d.Type, d.Major, d.Minor))
	}
	if s.Linux.Resources != nil {
		for _, r := range s.Linux.Resources.Devices {
			if r.Allow && !IsDefaultDeviceRule(r) {
				ev = append(ev, "device cgroup allows "+execrule.DeviceRule(r))
			}
		}
	}
	return strings.Join(ev, "; ")
}

// IsDefaultDeviceRule reports a device cgroup rule that grants no more than every
// container gets: /dev/null, zero, full, random, urandom, tty, console, ptmx, pts, tun,
// and mknod alone.
func IsDefaultDeviceRule(r specs.LinuxDeviceCgroup) bool {
	if strings.Trim(r.Access, "rwm") != "" {
		return false
	}
	// mknod alone on any char or block device is runc's default; the node is useless
	// without read or write access.
	if r.Access == "m" && (r.Type == "c" || r.Type == "b") {
		return true
	}
	if r.Type != "c" || r.Major == nil {
		return false
	}
	return slices.ContainsFunc(defaultDevices, func(d defaultDevice) bool {
		if d.major != *r.Major {
			return false
		}
		if d.minor == -1 {
			return true
		}
		return r.Minor != nil && *r.Minor == d.minor
	})
}

// maskedProcPaths and readonlyProcPaths are the kernel interfaces every runtime hides by
// default; a spec that exposes them has had its /proc unmasked.
var (
	maskedProcPaths   = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"}
	readonlyProcPaths = []string{"/proc/sys", "/proc/sysrq-trigger"}
)

func checkUnmaskedProc(s *specs.Spec) string {
	var masked, readonly []string
	if s.Linux != nil {
		masked, readonly = s.Linux.MaskedPaths, s.Linux.ReadonlyPaths
	}
	var ev []string
	for _, p := range maskedProcPaths {
		if !slices.Contains(masked, p) {
			ev = append(ev, p+" not masked")
		}
	}
	for _, p := range readonlyProcPaths {
		if !slices.Contains(readonly, p) && !slices.Contains(masked, p) {
			ev = append(ev, p+" not read-only")
		}
	}
	return strings.Join(ev, ", ")
}
