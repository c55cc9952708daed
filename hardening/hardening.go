// Package hardening rewrites a workload's OCI spec for the tier it runs in: seccomp,
// capabilities, noNewPrivileges, masked paths, pids limit, user, namespaces, mounts,
// devices, AppArmor and delegate-control annotations, as the tier's [tier.NAME.hardening]
// table says. It reports every control, even one the tier's delegate cannot apply, so
// nothing is dropped without a word.
//
// It is pure: the spec, the tier and the host's facts in, the spec changed and a report
// out. It reads no file and runs nothing; the caller reads the host (see Host).
package hardening

import (
	"encoding/json"
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/policy"
)

// Host is what the hardening depends on in the host the delegate runs on, and what was
// resolved there about the workload. The caller reads it (the shim and `triage explain`
// on the node, through package node).
type Host struct {
	// ID is the container's id.
	ID string
	// Reach is what the spec's host-touching fields reach on the host, indexed like the
	// spec as Apply gets it; nil judges the spec's text alone (classifier.Lexical).
	Reach *classifier.Reach
	// UnknownFields are the spec's fields this Triage does not know
	// (classifier.UnknownFields).
	UnknownFields []string
	// AppArmor: the kernel has AppArmor enabled
	// (/sys/module/apparmor/parameters/enabled is "Y").
	AppArmor bool
	// UserNamespaces: the host can create user namespaces for containers
	// (/proc/self/ns/user exists and user.max_user_namespaces is not 0).
	UserNamespaces bool
	// KataGuestSeccomp: the Kata guest applies the OCI seccomp profile (the Kata
	// configuration sets disable_guest_seccomp = false). Kata's default is true, which
	// drops the profile.
	KataGuestSeccomp bool
	// GVisorOCISeccomp: runsc applies the OCI seccomp profile inside the sandbox (its
	// configuration sets oci-seccomp = "true"). runsc's default ignores the profile.
	GVisorOCISeccomp bool
}

// Status says how a control took effect for the tier's delegate.
type Status string

const (
	// Enforced: written into the spec, and the host kernel enforces it.
	Enforced Status = "enforced"
	// Translated: written into the spec, and the delegate applies it its own way (gVisor's
	// sentry, the kata-agent in the guest VM): the detail says how.
	Translated Status = "translated"
	// Unsupported: the control or the spec asks for what the delegate or the host cannot
	// do; the detail says what is missing.
	Unsupported Status = "unsupported"
	// NotApplicable: nothing to do for this workload or delegate.
	NotApplicable Status = "not-applicable"
	// Kept: the tier keeps the spec's own setting.
	Kept Status = "kept"
)

// Control ids: the [tier.NAME.hardening] key each control comes from.
const (
	ControlUnknownFields   = "unknown_fields"
	ControlAnnotations     = "allow_annotations"
	ControlHooks           = "hooks"
	ControlCgroupsPath     = "cgroups_path"
	ControlHostNamespaces  = "host_namespaces"
	ControlSensitiveMounts = "sensitive_mounts"
	ControlHostDevices     = "host_devices"
	ControlUserNamespace   = "user_namespace"
	ControlRunAsNonRoot    = "run_as_non_root"
	ControlCapabilities    = "capabilities"
	ControlNoNewPrivileges = "no_new_privileges"
	ControlReadOnlyRootfs  = "read_only_rootfs"
	ControlMaskProc        = "mask_proc"
	ControlPidsLimit       = "pids_limit"
	ControlApparmor        = "apparmor_profile"
	ControlSeccomp         = "seccomp"
)

// Control is the outcome of one hardening control on one workload.
type Control struct {
	// ID is the control, one of the Control* constants.
	ID string `json:"id"`
	// Status is how it took effect.
	Status Status `json:"status"`
	// Detail says what changed, or why nothing did.
	Detail string `json:"detail"`
}

// Refusals. Every error of Apply, Exec and Update is an *Error wrapping one of them;
// compare with errors.Is.
var (
	// ErrInvalidSpec: the spec has no process, so there is nothing to harden.
	ErrInvalidSpec = execrule.ErrInvalidSpec
	// ErrHostNamespace: the workload shares a host namespace and the tier denies it.
	ErrHostNamespace = errors.New("host namespace not allowed")
	// ErrSensitiveMount: the workload mounts a sensitive host path and the tier denies it.
	ErrSensitiveMount = errors.New("sensitive host mount not allowed")
	// ErrHostDevice: the workload is given host devices and the tier denies it.
	ErrHostDevice = errors.New("host device not allowed")
	// ErrHooks: the spec has OCI hooks and the tier denies them.
	ErrHooks = errors.New("OCI hooks not allowed")
	// ErrHostCgroup: the spec's cgroupsPath reaches outside its own new cgroup.
	ErrHostCgroup = errors.New("cgroup outside the container's own")
	// ErrUnknownField: the spec has fields this Triage does not know.
	ErrUnknownField = errors.New("unknown spec field")
	// ErrSeccompUnsupported: the tier's delegate would not apply the tier's seccomp profile.
	ErrSeccompUnsupported = errors.New("seccomp profile would not be applied")
	// ErrRunAsRoot: the process runs as root and the tier denies it.
	ErrRunAsRoot = execrule.ErrRunAsRoot
	// ErrPrivilegedExec: an exec asks for every capability in a tier that does not allow them.
	ErrPrivilegedExec = execrule.ErrPrivilegedExec
	// ErrDeviceUpdate: an update adds device access.
	ErrDeviceUpdate = execrule.ErrDeviceUpdate
)

// Error is a refusal: what the workload needs, the control that forbids it, and the fix.
type Error = execrule.Error

// Apply hardens spec for tier t on host h: it changes the spec in place and returns one
// Control per control, in a fixed order. The error joins one *Error per control that
// refuses the workload; the spec must not be run then (its controls are still returned,
// for explain). t must come from a parsed policy, or have a Hardening from
// policy.DefaultHardening.
func Apply(spec *specs.Spec, t *policy.Tier, h Host) ([]Control, error) {
	if spec == nil || spec.Process == nil {
		return nil, &Error{Control: "spec", Tier: t.Name, Msg: "the OCI spec has no process", Err: ErrInvalidSpec}
	}
	if h.Reach == nil {
		h.Reach = classifier.Lexical(spec, "")
	}
	a := &applier{spec: spec, tier: t, cfg: hardeningOf(t), kind: t.Kind(), host: h}
	for _, step := range steps {
		step(a)
	}
	return a.controls, errors.Join(a.errs...)
}

// steps run in this order. Seccomp comes last: containerd's default profile depends on
// the capabilities the earlier steps left.
var steps = []func(*applier){
	(*applier).unknownFields,
	(*applier).annotations,
	(*applier).hooks,
	(*applier).hostNamespaces,
	(*applier).sensitiveMounts,
	(*applier).cgroupsPath,
	(*applier).hostDevices,
	(*applier).userNamespace,
	(*applier).runAsNonRoot,
	(*applier).capabilities,
	(*applier).noNewPrivileges,
	(*applier).readOnlyRootfs,
	(*applier).maskProc,
	(*applier).pidsLimit,
	(*applier).apparmor,
	(*applier).seccomp,
}

// hardeningOf returns the tier's settings, the defaults for a tier built without them.
func hardeningOf(t *policy.Tier) *policy.Hardening {
	if t.Hardening == nil {
		return policy.DefaultHardening(t.Kind())
	}
	return t.Hardening
}

type applier struct {
	spec     *specs.Spec
	tier     *policy.Tier
	cfg      *policy.Hardening
	kind     policy.RuntimeKind
	host     Host
	controls []Control
	errs     []error
}

func (a *applier) report(id string, status Status, format string, args ...any) {
	a.controls = append(a.controls, Control{ID: id, Status: status, Detail: classifier.Bound(fmt.Sprintf(format, args...))})
}

// enforced reports a control written into the spec: enforced by the host kernel under
// runc, translated under gVisor and Kata, with how.
func (a *applier) enforced(id, detail string) {
	switch a.kind {
	case policy.KindGVisor:
		a.report(id, Translated, "%s; applied by gVisor's sentry to the sandboxed application", detail)
	case policy.KindKata:
		a.report(id, Translated, "%s; applied by the kata-agent inside the guest VM", detail)
	default:
		a.report(id, Enforced, "%s", detail)
	}
}

func (a *applier) refuse(id string, class error, format string, args ...any) {
	a.errs = append(a.errs, refusal(a.tier, a.cfg, id, class, classifier.Bound(fmt.Sprintf(format, args...))))
	a.report(id, Enforced, "refused: "+format, args...)
}

func refusal(t *policy.Tier, cfg *policy.Hardening, id string, class error, msg string) *Error {
	return &Error{Control: id, Tier: t.Name, Source: cfg.Source, Msg: msg, Err: class}
}

// linux returns the spec's linux section, created if absent.
func (a *applier) linux() *specs.Linux {
	if a.spec.Linux == nil {
		a.spec.Linux = &specs.Linux{}
	}
	return a.spec.Linux
}

// Preview applies tier t's hardening to a copy of spec and returns its refusals, as Apply
// would: for a decision in audit mode, which records what enforcement would do. spec is
// not changed.
func Preview(spec *specs.Spec, t *policy.Tier, h Host) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	var c specs.Spec
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	_, err = Apply(&c, t, h)
	return err
}
