package hardening

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/policy"
)

// Exec hardens the process spec p of an exec into a container whose hardened spec is
// container, in tier t, as Apply hardened the container's own process:
//   - capabilities: a capability the tier's allow-list forbids is refused
//     (ErrPrivilegedExec: `exec --privileged` asks for every capability); the others are
//     narrowed to the container's bounding set;
//   - noNewPrivileges is set if the container's process or the tier has it;
//   - the user follows run_as_non_root (ErrRunAsRoot with "deny");
//   - the AppArmor profile and SELinux label are the container's, so an exec cannot
//     leave them.
//
// It changes p in place.
func Exec(p *specs.Process, container *specs.Spec, t *policy.Tier) error {
	cfg := hardeningOf(t)
	if p == nil || container == nil || container.Process == nil {
		return &Error{Control: "exec", Tier: t.Name, Source: cfg.Source, Msg: "the exec or its container has no process spec", Err: ErrInvalidSpec}
	}
	cp := container.Process
	if p.Capabilities != nil {
		allow := allowedCapabilities(cfg)
		var forbidden []string
		if allow != nil {
			forbidden = restrict(clone(p.Capabilities), func(n string) bool { return allow[n] })
		}
		if len(forbidden) > 0 {
			return refusal(t, cfg, ControlCapabilities, ErrPrivilegedExec, fmt.Sprintf(
				"the exec asks for %s, which the tier does not allow: exec without --privileged, or add them to capabilities", strings.Join(forbidden, ", ")))
		}
		bounding := map[string]bool{}
		if cp.Capabilities != nil {
			for _, n := range cp.Capabilities.Bounding {
				c, _ := policy.CanonicalCapability(n)
				bounding[c] = true
			}
		}
		restrict(p.Capabilities, func(n string) bool { return bounding[n] })
	}
	p.NoNewPrivileges = p.NoNewPrivileges || cp.NoNewPrivileges || *cfg.NoNewPrivileges
	if _, err := runAsNonRoot(container, &p.User, cfg); err != nil {
		return refusal(t, cfg, ControlRunAsNonRoot, ErrRunAsRoot, "exec: "+err.msg)
	}
	if cp.ApparmorProfile != "" {
		p.ApparmorProfile = cp.ApparmorProfile
	}
	if cp.SelinuxLabel != "" {
		p.SelinuxLabel = cp.SelinuxLabel
	}
	return nil
}

func clone(c *specs.LinuxCapabilities) *specs.LinuxCapabilities {
	out := &specs.LinuxCapabilities{}
	for i, set := range capabilitySets(out) {
		*set = append([]string(nil), *capabilitySets(c)[i]...)
	}
	return out
}

// Update checks the resources of a task Update: it may change limits, but it cannot give
// the container device access (a device cgroup rule with allow = true), which the
// container's tier checked at create. Refused with ErrDeviceUpdate.
func Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	var allowed []string
	for _, d := range r.Devices {
		if d.Allow {
			allowed = append(allowed, classifier.DeviceRule(d))
		}
	}
	if len(allowed) == 0 {
		return nil
	}
	return &Error{Control: ControlHostDevices, Err: ErrDeviceUpdate, Msg: fmt.Sprintf(
		"the update allows devices (%s): device access is decided when the container is created; recreate it with the devices", strings.Join(allowed, "; "))}
}
