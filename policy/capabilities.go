package policy

import (
	"slices"
	"strings"
)

// AllCapabilities is the keyword of a capability allow-list that allows every capability:
// capabilities = ["ALL"].
const AllCapabilities = "ALL"

// capabilityNames are the Linux capabilities up to CAP_CHECKPOINT_RESTORE (Linux 5.9), in
// kernel order. A name outside this list in a policy file is a typo, not a new capability.
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// baselineCapabilities are the capabilities the Kubernetes Pod Security Standards
// "baseline" profile lets a container add, NET_RAW included
// (https://kubernetes.io/docs/concepts/security/pod-security-standards/#baseline).
var baselineCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID",
	"CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// CapabilityNames returns every capability name Triage knows, CAP_-prefixed, in kernel order.
func CapabilityNames() []string { return slices.Clone(capabilityNames) }

// BaselineCapabilities returns the Kubernetes PSS baseline set, CAP_-prefixed, sorted.
func BaselineCapabilities() []string { return slices.Clone(baselineCapabilities) }

// CanonicalCapability returns the CAP_-prefixed upper-case form of a capability name
// ("sys_admin", "SYS_ADMIN" and "CAP_SYS_ADMIN" are the same capability), and whether it
// is a capability Triage knows.
func CanonicalCapability(name string) (string, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n, slices.Contains(capabilityNames, n)
}
