package hardening

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/policy"
)

// isHostRoot reports whether uid is root on the host: uid 0 with no user namespace, or
// with one that maps it to host uid 0. A user namespace joined by path (a pod's) is
// taken as remapped, as the classifier does: its mapping is not in this spec.
func isHostRoot(s *specs.Spec, uid uint32) bool {
	if uid != 0 {
		return false
	}
	userns, ok := classifier.Namespace(s, specs.UserNamespace)
	if !ok {
		return true
	}
	if userns.Path != "" {
		return false
	}
	for _, m := range s.Linux.UIDMappings {
		if m.ContainerID == 0 && m.Size > 0 {
			return m.HostID == 0
		}
	}
	return true
}

func (a *applier) runAsNonRoot() {
	u := &a.spec.Process.User
	c, err := runAsNonRoot(a.spec, u, a.cfg)
	if err != nil {
		a.refuse(ControlRunAsNonRoot, ErrRunAsRoot, "%s", err.msg)
		return
	}
	a.report(ControlRunAsNonRoot, c.Status, "%s", c.Detail)
}

// rootRefusal is run_as_non_root = "deny" refusing a root process.
type rootRefusal struct{ msg string }

// runAsNonRoot applies the tier's rule to the user of a process of spec s.
func runAsNonRoot(s *specs.Spec, u *specs.User, cfg *policy.Hardening) (Control, *rootRefusal) {
	c := Control{ID: ControlRunAsNonRoot}
	switch {
	case !isHostRoot(s, u.UID):
		c.Status, c.Detail = NotApplicable, fmt.Sprintf("runs as uid %d, not host root", u.UID)
	case cfg.RunAsNonRoot == policy.RootAllow:
		c.Status, c.Detail = Kept, "allowed: runs as root (uid 0)"
	case cfg.RunAsNonRoot == policy.RootDeny:
		return c, &rootRefusal{fmt.Sprintf("the process runs as root (uid 0): set runAsUser / USER to a non-zero uid, or set run_as_non_root = %q or to a \"UID:GID\"", policy.RootAllow)}
	default:
		uid, gid, _ := cfg.RunAsNonRoot.User()
		u.UID, u.GID = uid, gid
		u.AdditionalGids = slices.DeleteFunc(u.AdditionalGids, func(g uint32) bool { return g == 0 })
		c.Status, c.Detail = Enforced, fmt.Sprintf("uid 0 replaced by %d:%d, supplementary group 0 dropped", uid, gid)
	}
	return c, nil
}

// capabilitySets returns pointers to the five capability sets of c.
func capabilitySets(c *specs.LinuxCapabilities) []*[]string {
	return []*[]string{&c.Bounding, &c.Effective, &c.Permitted, &c.Inheritable, &c.Ambient}
}

// allowedCapabilities returns the tier's allow-list as canonical names; nil means all.
func allowedCapabilities(cfg *policy.Hardening) map[string]bool {
	if slices.Contains(cfg.Capabilities, policy.AllCapabilities) {
		return nil
	}
	allow := map[string]bool{}
	for _, n := range cfg.Capabilities {
		c, _ := policy.CanonicalCapability(n)
		allow[c] = true
	}
	return allow
}

// restrict keeps in each set of c only the capabilities allowed (nil allows all), and
// returns the ones removed, sorted.
func restrict(c *specs.LinuxCapabilities, allowed func(string) bool) []string {
	dropped := map[string]bool{}
	for _, set := range capabilitySets(c) {
		kept := (*set)[:0:0]
		for _, n := range *set {
			name, _ := policy.CanonicalCapability(n)
			if allowed(name) {
				kept = append(kept, name)
			} else {
				dropped[name] = true
			}
		}
		if *set != nil {
			*set = kept
		}
	}
	out := make([]string, 0, len(dropped))
	for n := range dropped {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (a *applier) capabilities() {
	c := a.spec.Process.Capabilities
	allow := allowedCapabilities(a.cfg)
	switch {
	case c == nil:
		a.report(ControlCapabilities, NotApplicable, "the process has no capabilities")
		return
	case allow == nil:
		a.report(ControlCapabilities, Kept, "every capability allowed (capabilities = [%q])", policy.AllCapabilities)
		return
	}
	dropped := restrict(c, func(n string) bool { return allow[n] })
	if len(dropped) == 0 {
		a.enforced(ControlCapabilities, "every requested capability is allowed")
		return
	}
	a.enforced(ControlCapabilities, "dropped "+strings.Join(dropped, ", "))
}

func (a *applier) noNewPrivileges() {
	p := a.spec.Process
	switch {
	case !*a.cfg.NoNewPrivileges:
		a.report(ControlNoNewPrivileges, Kept, "noNewPrivileges = %t, the spec's", p.NoNewPrivileges)
	case p.NoNewPrivileges:
		a.enforced(ControlNoNewPrivileges, "noNewPrivileges already set")
	default:
		p.NoNewPrivileges = true
		a.enforced(ControlNoNewPrivileges, "noNewPrivileges set")
	}
}

func (a *applier) readOnlyRootfs() {
	switch {
	case !a.cfg.ReadOnlyRootfs:
		a.report(ControlReadOnlyRootfs, Kept, "root filesystem read-only = %t, the spec's", a.spec.Root != nil && a.spec.Root.Readonly)
	case a.spec.Root == nil:
		a.report(ControlReadOnlyRootfs, NotApplicable, "the spec has no root filesystem")
	default:
		a.spec.Root.Readonly = true
		a.enforced(ControlReadOnlyRootfs, "root filesystem read-only")
	}
}

// Containerd's default masked and read-only paths (pkg/oci populateDefaultUnixSpec,
// containerd v2.4), which a spec for an unprivileged container has. containerd also masks
// /sys/devices/system/cpu/cpu*/thermal_throttle, which depends on the host's CPUs.
var (
	DefaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
	}
	DefaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func (a *applier) maskProc() {
	if !*a.cfg.MaskProc {
		a.report(ControlMaskProc, Kept, "the spec's masked and read-only paths")
		return
	}
	l := a.linux()
	var added []string
	for _, p := range DefaultMaskedPaths {
		if !slices.Contains(l.MaskedPaths, p) {
			l.MaskedPaths = append(l.MaskedPaths, p)
			added = append(added, p+" masked")
		}
	}
	for _, p := range DefaultReadonlyPaths {
		if !slices.Contains(l.ReadonlyPaths, p) && !slices.Contains(l.MaskedPaths, p) {
			l.ReadonlyPaths = append(l.ReadonlyPaths, p)
			added = append(added, p+" read-only")
		}
	}
	detail := "containerd's default masked and read-only paths already set"
	if len(added) > 0 {
		detail = "restored " + strings.Join(added, ", ")
	}
	switch a.kind {
	case policy.KindGVisor:
		a.report(ControlMaskProc, Translated, "%s; gVisor serves its own /proc and /sys, the host's are never exposed", detail)
	default:
		a.enforced(ControlMaskProc, detail)
	}
}

func (a *applier) pidsLimit() {
	limit := *a.cfg.PidsLimit
	l := a.linux()
	var cur int64
	if l.Resources != nil && l.Resources.Pids != nil && l.Resources.Pids.Limit != nil {
		cur = *l.Resources.Pids.Limit
	}
	switch {
	case limit == 0:
		a.report(ControlPidsLimit, Kept, "the spec's limit (%d; 0 or less is none)", cur)
		return
	case cur > 0 && cur <= limit:
		a.report(ControlPidsLimit, Enforced, "the spec's limit %d is within %d", cur, limit)
		return
	}
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	l.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	switch a.kind {
	case policy.KindGVisor:
		a.report(ControlPidsLimit, Translated, "pids.max %d; runsc applies it to the sandbox's cgroup on the host", limit)
	default:
		a.enforced(ControlPidsLimit, fmt.Sprintf("pids.max %d", limit))
	}
}

func (a *applier) apparmor() {
	p := a.spec.Process
	switch {
	case a.kind == policy.KindGVisor || a.kind == policy.KindKata:
		what := "gVisor ignores AppArmor"
		if a.kind == policy.KindKata {
			what = "the Kata guest has no AppArmor"
		}
		if p.ApparmorProfile == "" {
			a.report(ControlApparmor, NotApplicable, "no profile asked for; %s", what)
			return
		}
		a.report(ControlApparmor, Unsupported, "profile %q not applied: %s", p.ApparmorProfile, what)
	case a.cfg.ApparmorProfile != "" && a.host.AppArmor:
		p.ApparmorProfile = a.cfg.ApparmorProfile
		a.report(ControlApparmor, Enforced, "profile %q", p.ApparmorProfile)
	case a.cfg.ApparmorProfile != "":
		a.report(ControlApparmor, Unsupported, "profile %q not applied: the host has AppArmor disabled", a.cfg.ApparmorProfile)
	case p.ApparmorProfile == "":
		a.report(ControlApparmor, Kept, "no profile (apparmor_profile not set)")
	case !a.host.AppArmor:
		a.report(ControlApparmor, Unsupported, "the spec's profile %q is not applied: the host has AppArmor disabled", p.ApparmorProfile)
	default:
		a.report(ControlApparmor, Kept, "the spec's profile %q", p.ApparmorProfile)
	}
}
