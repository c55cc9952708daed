package hardening

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/policy"
)

func (a *applier) runAsNonRoot() {
	u := &a.spec.Process.User
	uid := u.UID
	outcome, refusal := execrule.RunAsNonRoot(a.spec, u, string(a.cfg.RunAsNonRoot))
	switch outcome {
	case "":
		a.refuse(ControlRunAsNonRoot, ErrRunAsRoot, "%s", refusal)
	case execrule.RootNotApplicable:
		a.report(ControlRunAsNonRoot, NotApplicable, "runs as uid %d, not host root", uid)
	case execrule.RootKept:
		a.report(ControlRunAsNonRoot, Kept, "allowed: runs as root (uid 0)")
	default:
		a.report(ControlRunAsNonRoot, Enforced, "uid 0 replaced by %d:%d, supplementary group 0 dropped", u.UID, u.GID)
	}
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
	dropped := execrule.Restrict(c, func(n string) bool { return allow[n] })
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
