// Package execrule is what an exec or an update into a running container may do. Triage
// fixes the rules when the container starts, from its tier's hardening, and the router
// daemon enforces them on every Exec and Update. The package imports neither the policy nor
// the classifier, so the router, which lives as long as the pod, stays small.
package execrule

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Rules are the exec rules of one container.
type Rules struct {
	// Tier is the container's tier; Source where its hardening table is ("file:line:col").
	Tier   string `json:"tier"`
	Source string `json:"source,omitempty"`
	// AllCapabilities: the tier allows every capability.
	AllCapabilities bool `json:"all_capabilities,omitempty"`
	// AllowedCapabilities is the tier's allow-list, as CAP_ names.
	AllowedCapabilities []string `json:"allowed_capabilities,omitempty"`
	// Requested are the capabilities the container itself asked for (its bounding set
	// before hardening), when known. Clients build an exec's process from the container's
	// record, so a normal exec asks for these and is narrowed like the container was; an
	// exec asking for more is an escalation. When unknown, the allow-list decides.
	Requested []string `json:"requested,omitempty"`
	// NoNewPrivileges: the tier sets noNewPrivileges on every process.
	NoNewPrivileges bool `json:"no_new_privileges"`
	// RunAsNonRoot is the tier's run_as_non_root: "allow", "deny" or "UID[:GID]".
	RunAsNonRoot string `json:"run_as_non_root"`
	// PidsLimit is the tier's pids_limit, the most pids.max an Update may set; 0: the tier
	// sets none (rules recorded before this field existed read as 0 too).
	PidsLimit int64 `json:"pids_limit,omitempty"`
}

// Refusals; an error of Exec is an *Error wrapping one of them, one of Update joins one
// *Error per refusal. Compare with errors.Is.
var (
	ErrInvalidSpec    = errors.New("invalid spec")
	ErrRunAsRoot      = errors.New("running as root not allowed")
	ErrPrivilegedExec = errors.New("privileged exec not allowed")
	ErrDeviceUpdate   = errors.New("device access update not allowed")
	ErrLimitUpdate    = errors.New("limit update not allowed")
)

// Control names, as the [tier.NAME.hardening] keys they come from.
const (
	ControlCapabilities = "capabilities"
	ControlRunAsNonRoot = "run_as_non_root"
	ControlHostDevices  = "host_devices"
	ControlPidsLimit    = "pids_limit"
)

// Error is a refusal: what the workload asks for, the control that forbids it, and the fix.
type Error struct {
	// Control is the hardening key that refused.
	Control string
	// Tier is the tier's name; Source where its hardening table is ("file:line:column").
	Tier, Source string
	// Msg says what the workload asks for and how to fix it.
	Msg string
	// Err is the class of refusal.
	Err error
}

func (e *Error) Error() string {
	where := fmt.Sprintf("[tier.%s.hardening] %s", e.Tier, e.Control)
	if e.Tier == "" {
		where = e.Control
	}
	if e.Source != "" {
		where += " (" + e.Source + ")"
	}
	return fmt.Sprintf("triage: %s: %s: %s", e.Err, where, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

func (r Rules) refuse(control string, class error, msg string) *Error {
	return &Error{Control: control, Tier: r.Tier, Source: r.Source, Msg: msg, Err: class}
}

// Exec hardens the process spec p of an exec into a container whose (hardened) spec is
// container, in place:
//   - a capability the container did not ask for itself (or, when that is unknown, that the
//     tier does not allow) is refused: `exec --privileged` asks for every one; the others
//     are narrowed to the container's hardened bounding set;
//   - noNewPrivileges is set if the container's process or the tier has it;
//   - the user follows run_as_non_root;
//   - the AppArmor profile and SELinux label are the container's, so an exec cannot leave
//     them.
func Exec(p *specs.Process, container *specs.Spec, r Rules) error {
	if p == nil || container == nil || container.Process == nil {
		return r.refuse("exec", ErrInvalidSpec, "the exec or its container has no process spec")
	}
	cp := container.Process
	if p.Capabilities != nil {
		if r.Requested != nil || !r.AllCapabilities {
			allowed, what := setOf(r.AllowedCapabilities), "the tier does not allow"
			if r.Requested != nil {
				allowed, what = setOf(r.Requested), "its container did not ask for"
			}
			if forbidden := Restrict(clone(p.Capabilities), func(n string) bool { return allowed[n] }); len(forbidden) > 0 {
				return r.refuse(ControlCapabilities, ErrPrivilegedExec, fmt.Sprintf(
					"the exec asks for %s, which %s: exec without --privileged, or recreate the container with them (and allow them in capabilities)", strings.Join(forbidden, ", "), what))
			}
		}
		var bounding map[string]bool
		if cp.Capabilities != nil {
			bounding = setOf(cp.Capabilities.Bounding)
		}
		Restrict(p.Capabilities, func(n string) bool { return bounding[n] })
	}
	p.NoNewPrivileges = p.NoNewPrivileges || cp.NoNewPrivileges || r.NoNewPrivileges
	if _, refusal := RunAsNonRoot(container, &p.User, r.RunAsNonRoot); refusal != "" {
		return r.refuse(ControlRunAsNonRoot, ErrRunAsRoot, "exec: "+refusal)
	}
	if cp.ApparmorProfile != "" {
		p.ApparmorProfile = cp.ApparmorProfile
	}
	if cp.SelinuxLabel != "" {
		p.SelinuxLabel = cp.SelinuxLabel
	}
	return nil
}

// Update checks the resources of a task Update: it may change limits, but it cannot undo
// what the container's tier set at create:
//   - device access (a device cgroup rule with allow = true);
//   - the tier's pids_limit: pids.limit may be lowered, not raised above it or removed.
//
// The error joins one *Error per refusal, so the user sees every fix at once.
func Update(res *specs.LinuxResources, r Rules) error {
	if res == nil {
		return nil
	}
	return errors.Join(updateDevices(res, r), updatePids(res, r))
}

func updateDevices(res *specs.LinuxResources, r Rules) error {
	var allowed []string
	for _, d := range res.Devices {
		if d.Allow {
			allowed = append(allowed, DeviceRule(d))
		}
	}
	if len(allowed) == 0 {
		return nil
	}
	return r.refuse(ControlHostDevices, ErrDeviceUpdate, fmt.Sprintf(
		"the update allows devices (%s): device access is decided when the container is created; recreate it with the devices", strings.Join(allowed, "; ")))
}

// updatePids refuses a pids.limit above the tier's pids_limit or one that removes the
// limit: at create, Apply lowered either to the tier's, and explain and the audit still
// report it enforced. A nil Limit leaves pids.max as it is.
func updatePids(res *specs.LinuxResources, r Rules) error {
	if r.PidsLimit <= 0 || res.Pids == nil || res.Pids.Limit == nil {
		return nil
	}
	limit := *res.Pids.Limit
	var what string
	switch {
	case limit < 0:
		what = fmt.Sprintf("pids.limit %d (no limit)", limit)
	case limit == 0:
		// Runtimes differ on 0: crun (and runc at create, before 1.4) set pids.max "max",
		// runc 1.4 sets 0. Refused, since it can remove the limit.
		// https://github.com/opencontainers/runc/issues/4014
		what = "pids.limit 0 (no limit, in some runtimes)"
	case limit > r.PidsLimit:
		what = fmt.Sprintf("pids.limit %d", limit)
	default:
		return nil
	}
	return r.refuse(ControlPidsLimit, ErrLimitUpdate, fmt.Sprintf(
		"the update sets %s, above the tier's pids_limit %d: keep it between 1 and %d, or change pids_limit in the policy", what, r.PidsLimit, r.PidsLimit))
}

// DeviceRule formats a device cgroup rule as "TYPE MAJOR:MINOR ACCESS" ("c 1:3 rwm").
func DeviceRule(d specs.LinuxDeviceCgroup) string {
	typ, access := d.Type, d.Access
	if typ == "" {
		typ = "a"
	}
	if access == "" {
		access = "rwm"
	}
	return fmt.Sprintf("%s %s:%s %s", typ, deviceNumber(d.Major), deviceNumber(d.Minor), access)
}

func deviceNumber(n *int64) string {
	if n == nil {
		return "*"
	}
	return strconv.FormatInt(*n, 10)
}

// Canonical returns the CAP_-prefixed upper-case form of a capability name.
func Canonical(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[Canonical(n)] = true
	}
	return m
}

// CapabilitySets returns pointers to the five capability sets of c.
func CapabilitySets(c *specs.LinuxCapabilities) []*[]string {
	return []*[]string{&c.Bounding, &c.Effective, &c.Permitted, &c.Inheritable, &c.Ambient}
}

func clone(c *specs.LinuxCapabilities) *specs.LinuxCapabilities {
	out := &specs.LinuxCapabilities{}
	for i, set := range CapabilitySets(out) {
		*set = append([]string(nil), *CapabilitySets(c)[i]...)
	}
	return out
}

// Restrict keeps in each set of c only the capabilities allowed, in canonical form, and
// returns the ones removed, sorted.
func Restrict(c *specs.LinuxCapabilities, allowed func(string) bool) []string {
	dropped := map[string]bool{}
	for _, set := range CapabilitySets(c) {
		kept := (*set)[:0:0]
		for _, n := range *set {
			name := Canonical(n)
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
