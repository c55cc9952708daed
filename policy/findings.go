package policy

import "slices"

// Finding ids: the risk checks the classifier runs, named here because rules refer to them
// (match.findings) and the policy loader rejects a name that is not one of them.
const (
	FindingInvalidSpec         = "invalid-spec"
	FindingPrivileged          = "privileged"
	FindingHostNamespace       = "host-namespace"
	FindingSensitiveHostMount  = "sensitive-host-mount"
	FindingDangerousCapability = "dangerous-capability"
	FindingNonBaseline         = "non-baseline-capability"
	FindingRunAsRoot           = "run-as-root"
	FindingSeccompUnconfined   = "seccomp-unconfined"
	FindingApparmorUnconfined  = "apparmor-unconfined"
	FindingPrivilegeEscalation = "privilege-escalation"
	FindingWritableRootfs      = "writable-rootfs"
	FindingUnsafeSysctl        = "unsafe-sysctl"
	FindingHostDevice          = "host-device"
	FindingUnmaskedProc        = "unmasked-proc"
	FindingHooks               = "hooks"
	FindingHostCgroup          = "host-cgroup"
	FindingUnmanagedRootfs     = "unmanaged-rootfs"
	FindingUnknownField        = "unknown-field"
)

// findingIDs lists every finding id in the order the classifier reports them.
var findingIDs = []string{
	FindingInvalidSpec,
	FindingPrivileged,
	FindingHostNamespace,
	FindingSensitiveHostMount,
	FindingDangerousCapability,
	FindingNonBaseline,
	FindingRunAsRoot,
	FindingSeccompUnconfined,
	FindingApparmorUnconfined,
	FindingPrivilegeEscalation,
	FindingWritableRootfs,
	FindingUnsafeSysctl,
	FindingHostDevice,
	FindingUnmaskedProc,
	FindingHooks,
	FindingHostCgroup,
	FindingUnmanagedRootfs,
	FindingUnknownField,
}

// FindingIDs returns every finding id in the order the classifier reports them.
func FindingIDs() []string {
	return slices.Clone(findingIDs)
}
