package classifier

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

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
// Checks run only on a spec with a process, so f.Spec.Process is never nil; f.Spec.Linux
// may be, and f.reach() is never nil.
type check struct {
	id  string
	run func(f *Facts) string
}

// onSpec adapts a check that needs the spec alone.
func onSpec(run func(s *specs.Spec) string) func(f *Facts) string {
	return func(f *Facts) string { return run(f.Spec) }
}

// checks run in this order, which is the order of the findings reported (and of
// policy.FindingIDs).
var checks = []check{
	{policy.FindingPrivileged, onSpec(checkPrivileged)},
	{policy.FindingHostNamespace, checkHostNamespace},
	{policy.FindingSensitiveHostMount, checkSensitiveHostMount},
	{policy.FindingDangerousCapability, onSpec(checkDangerousCapability)},
	{policy.FindingNonBaseline, onSpec(checkNonBaselineCapability)},
	{policy.FindingRunAsRoot, onSpec(checkRunAsRoot)},
	{policy.FindingSeccompUnconfined, onSpec(checkSeccompUnconfined)},
	{policy.FindingApparmorUnconfined, onSpec(checkApparmorUnconfined)},
	{policy.FindingPrivilegeEscalation, onSpec(checkPrivilegeEscalation)},
	{policy.FindingWritableRootfs, onSpec(checkWritableRootfs)},
	{policy.FindingUnsafeSysctl, onSpec(checkUnsafeSysctl)},
	{policy.FindingHostDevice, onSpec(HostDeviceAccess)},
	{policy.FindingUnmaskedProc, onSpec(checkUnmaskedProc)},
	{policy.FindingHooks, onSpec(checkHooks)},
	{policy.FindingHostCgroup, checkHostCgroup},
	{policy.FindingUnmanagedRootfs, checkUnmanagedRootfs},
	{policy.FindingUnknownField, checkUnknownFields},
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
		if ev := c.run(&f); ev != "" {
			out = append(out, Finding{ID: c.id, Evidence: Bound(ev)})
		}
	}
	return out
}

// capabilityOrder is every capability Triage knows, in kernel order; a capability set is a
// mask of one bit per place in it (capMask).
var capabilityOrder = policy.CapabilityNames()

// allCapabilities are the capabilities every kernel since 3.16 has; holding all of them is
// what a privileged container gets. The ones added in Linux 5.8 and 5.9 are left out: a
// privileged container on an older kernel does not hold them.
var allCapabilities = capMask(slices.DeleteFunc(policy.CapabilityNames(), func(n string) bool {
	return n == "CAP_PERFMON" || n == "CAP_BPF" || n == "CAP_CHECKPOINT_RESTORE"
}))

// dangerousCapabilities widen the kernel attack surface or reach past the container. None
// is in the Kubernetes PSS baseline set (policy.BaselineCapabilities), which containerd
// gives every container: CAP_NET_RAW, CAP_MKNOD and CAP_SETFCAP are baseline, so holding
// them is the norm, not a finding of this kind.
var dangerousCapabilities = capMask([]string{
	"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_NET_ADMIN",
	"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_BOOT", "CAP_SYS_TIME",
	"CAP_SYSLOG", "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_SYS_RESOURCE",
	"CAP_LINUX_IMMUTABLE", "CAP_SYS_PACCT", "CAP_SYS_TTY_CONFIG", "CAP_AUDIT_CONTROL",
	"CAP_IPC_OWNER", "CAP_CHECKPOINT_RESTORE", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
})

// baselineCapabilities is the Kubernetes PSS baseline set.
var baselineCapabilities = capMask(policy.BaselineCapabilities())

// capMask is the set of the capabilities named in lists that Triage knows, normalised
// ("sys_admin" and "CAP_SYS_ADMIN" are the same): bit i is capabilityOrder[i].
func capMask(lists ...[]string) uint64 {
	var m uint64
	for _, names := range lists {
		for _, n := range names {
			c, _ := policy.CanonicalCapability(n)
			if i := slices.Index(capabilityOrder, c); i >= 0 {
				m |= 1 << i
			}
		}
	}
	return m
}

func checkPrivileged(s *specs.Spec) string {
	if c := s.Process.Capabilities; c != nil {
		if capMask(c.Bounding)&allCapabilities == allCapabilities {
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

// hostNamespaceTypes are the namespaces a workload must not share with the host; a spec
// without one of them shares the host's.
var hostNamespaceTypes = []specs.LinuxNamespaceType{
	specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace,
}

func checkHostNamespace(f *Facts) string {
	_, ev := HostNamespaces(f.Spec, f.reach())
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

func checkSensitiveHostMount(f *Facts) string {
	return strings.Join(SensitiveMounts(f.Spec, f.reach()), "; ")
}

func checkDangerousCapability(s *specs.Spec) string {
	return heldCapabilities(s, dangerousCapabilities)
}

// checkNonBaselineCapability reports capabilities beyond the Kubernetes PSS baseline set.
func checkNonBaselineCapability(s *specs.Spec) string {
	return heldCapabilities(s, ^baselineCapabilities)
}

// heldCapabilities lists, in kernel order, the capabilities of set the process holds
// (bounding, effective or permitted); "" when it holds none of them.
func heldCapabilities(s *specs.Spec, set uint64) string {
	c := s.Process.Capabilities
	if c == nil {
		return ""
	}
	held := capMask(c.Bounding, c.Effective, c.Permitted) & set
	var found []string
	for i, n := range capabilityOrder {
		if held&(1<<i) != 0 {
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
	for _, name := range slices.Sorted(maps.Keys(s.Linux.NetDevices)) {
		ev = append(ev, "host network device "+name+" moved into the container")
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

// hookKinds are the OCI hooks in the order the runtime runs them. Each runs as host root,
// outside the container's namespaces (but createContainer and startContainer, which run in
// them, with the runtime's privileges).
func hookKinds(h *specs.Hooks) []struct {
	name  string
	hooks []specs.Hook
} {
	return []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, {"createRuntime", h.CreateRuntime}, {"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer}, {"poststart", h.Poststart}, {"poststop", h.Poststop},
	}
}

// Hooks lists the spec's OCI hooks as "KIND PATH".
func Hooks(s *specs.Spec) []string {
	if s.Hooks == nil {
		return nil
	}
	var out []string
	for _, k := range hookKinds(s.Hooks) {
		for _, h := range k.hooks {
			out = append(out, k.name+" "+h.Path)
		}
	}
	return out
}

func checkHooks(s *specs.Spec) string {
	if hooks := Hooks(s); len(hooks) > 0 {
		return "runs host programs as root: " + strings.Join(hooks, ", ")
	}
	return ""
}

// CgroupPathProblem says what is wrong with linux.cgroupsPath for container id: a cgroup
// that exists already (the container would join it, write its limits there and remove it
// on exit), a path that climbs with "..", or one whose last element is not the container
// (containerd, nerdctl and the CRI plugin all end it with the id). "" when it is fine.
func CgroupPathProblem(s *specs.Spec, id string, exists bool) string {
	if s.Linux == nil || s.Linux.CgroupsPath == "" {
		return ""
	}
	p := s.Linux.CgroupsPath
	name := path.Base(p)
	if parts := strings.Split(p, ":"); len(parts) == 3 && !strings.HasPrefix(p, "/") {
		// systemd's "slice:prefix:name".
		name = parts[2]
	}
	switch {
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Sprintf("cgroupsPath %q climbs out of its parent with ..", p)
	case exists:
		return fmt.Sprintf("cgroupsPath %q names a cgroup that exists already: the container would join it, set its limits and remove it on exit", p)
	case id != "" && name != id:
		return fmt.Sprintf("cgroupsPath %q does not end with the container's id %q", p, id)
	}
	return ""
}

func checkHostCgroup(f *Facts) string {
	return CgroupPathProblem(f.Spec, f.ID, f.reach().CgroupExists)
}

// RootfsProblem says why the root filesystem is not an image's snapshot: the container has
// no image in containerd's records, or its root is not the bundle's rootfs, where containerd
// mounts the snapshot. "" when it is.
func RootfsProblem(s *specs.Spec, r *Reach, image string) string {
	var ev []string
	if image == "" {
		ev = append(ev, "no image in containerd's records (ctr run --rootfs, a hand-made bundle)")
	}
	switch {
	case s.Root == nil:
		ev = append(ev, "no root filesystem")
	case !r.Snapshot:
		ev = append(ev, fmt.Sprintf("root filesystem is host %s, not the bundle's rootfs%s", r.Root, spelled(s.Root.Path, r.Root)))
	}
	return strings.Join(ev, "; ")
}

func checkUnmanagedRootfs(f *Facts) string {
	return RootfsProblem(f.Spec, f.reach(), f.image())
}

func checkUnknownFields(f *Facts) string {
	if len(f.UnknownFields) == 0 {
		return ""
	}
	return "fields this Triage does not know (a newer OCI spec?): " + strings.Join(f.UnknownFields, ", ")
}

// MaxEvidence bounds a finding's evidence and a decision's reason: they quote the spec,
// which the workload's author writes.
const MaxEvidence = 512

// Bound cuts s to MaxEvidence bytes (on a rune boundary) and marks the cut.
func Bound(s string) string {
	if len(s) <= MaxEvidence {
		return s
	}
	cut := MaxEvidence
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…[%d bytes cut]", s[:cut], len(s)-cut)
}
